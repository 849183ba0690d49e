"""``biofed scan``: what must hold before a catalog server is deployed.

The scan reads a server configuration, the access policy it names, the catalog manifest of a
lake (when one is given) and the files of the repository, and reports every problem it finds
in one pass: a public bind without token verification, TLS or DNS-rebinding protection; no
token audience; development settings in production; secrets in configuration or in the
repository; wildcard scopes; identifiers or free text reachable by a research role; datasets
without an owner, freshness SLA or quality suite; a manifest built under another policy, or
one the server would refuse (a row threshold on a column that is not numeric, aggregate
access to a view without a person column); and catalog descriptions that read like
instructions to a model.

Decisions worth knowing:

* Every input that cannot be read becomes a finding (``config_invalid``, ``policy_invalid``,
  ``manifest_invalid``), never a traceback, so CI gets the complete list at once.
* Bind checks run whatever the configured transport: ``biofed serve --http`` overrides it.
* Policy checks read the raw YAML before it is validated, so one mistake that fails
  validation (a wildcard scope) does not hide the others; ``policy_invalid`` follows.
* Secret values are never echoed: findings name the key or file, not what it holds.
* The repository check lists files with ``git ls-files --cached --others --exclude-standard``
  (tracked files and files that would be committed) when the root is a git checkout, and
  walks the folder otherwise, skipping virtual environments, caches and lake data.
* YAML anchors are inspected once, where they are defined, so a secret in a shared anchor is
  reported once rather than once per dataset that merges it.
"""

import argparse
import os
import re
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mcp_catalog.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    ServerConfig,
    is_loopback,
    load_config,
)
from mcp_catalog.lint import lint_text
from mcp_catalog.manifest import (
    PERSON_COLUMN,
    CatalogDataset,
    Manifest,
    ManifestError,
    load_manifest,
)
from mcp_catalog.policy import (
    DEFAULT_POLICY_PATH,
    DatasetPolicy,
    Policy,
    PolicyError,
    load_policy,
)
from quality.freshness import sla_for
from quality.suite_tables import SUITE_TABLES

MANIFEST_RELATIVE_PATH = Path("_catalog") / "manifest.json"

_DEV_ISSUER = "biofed-dev"
_DEV_JWKS_NAME = "dev-jwks.json"

_SECRET_NAME = re.compile(r"key|secret|password|passwd|token|private", re.IGNORECASE)
_ENV_REFERENCE = re.compile(r"^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$")
_REFERENCE_SUFFIXES = (".json", ".pem", ".key")
_PEM_MARKER = "-----BEGIN"
_HEX_BLOB = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,}(?![0-9A-Fa-f])")
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/_-]{40,}={0,2}")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_STR = "tag:yaml.org,2002:str"
_YAML_MERGE = "tag:yaml.org,2002:merge"

_IGNORED_DIRS = frozenset({".venv", ".git", "node_modules", "__pycache__"})
_IGNORED_DIR_PREFIXES = ("lake", "landing")
_KEY_FILE_NAMES = frozenset({"keys.json", "audit-key.json", "dev-signing-key.pem"})
_KEY_FILE_SUFFIXES = (".pem", ".key")
_PRIVATE_KEY_BLOCK = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
# Same line only ([ \t]*): "X_KEY" on one line and "=" on the next is not an assignment.
_KEY_ASSIGNMENT = re.compile(
    rb"(BIOFED_(?:PSEUDONYM|DATE_SHIFT|AUDIT)_KEY)[\"'\]]*[ \t]*[=:][ \t]*[\"']?[0-9A-Fa-f]{32}"
)
_MAX_FILE_BYTES = 5_000_000
"""Bytes read from each repository file; keys sit well within this."""

_RESEARCH_ROLE = "researcher"
_POLICY_NAME_MAPS = frozenset({"scopes", "columns"})
"""Policy mappings whose keys are names (scope -> description, column -> class), not
settings: a column called ``record_key`` is not a key."""


@dataclass(frozen=True)
class Finding:
    """One problem the scan found."""

    rule: str
    """A snake_case id such as ``public_bind_without_auth``."""
    where: str
    """What the finding is about: ``http.host``, ``policy roles.researcher.scopes``,
    ``dataset research/patients``, ``file restricted/keys.json``."""
    message: str
    """What is wrong and how to fix it; never a secret value."""


@dataclass(frozen=True)
class ScanReport:
    """Everything one scan found, and which checks ran."""

    findings: list[Finding]
    checked: list[str]
    """Names of the checks that ran; a skipped check says why in parentheses."""

    @property
    def ok(self) -> bool:
        """Whether the scan found nothing."""
        return not self.findings


@dataclass
class _Document:
    """A YAML file both as data (merge keys resolved) and as a node graph (anchors once)."""

    data: Any
    root: yaml.Node | None


def _read_yaml(file: Path, what: str, rule: str) -> _Document | Finding:
    where = f"{what} {file}"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Finding(rule, where, f"There is no {what} file at {file}; pass an existing file.")
    except (OSError, UnicodeDecodeError):
        return Finding(
            rule, where, f"The {what} file {file} cannot be read as UTF-8 text; fix or replace it."
        )
    try:
        root = yaml.compose(text, Loader=_YAML_LOADER)
        data = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        # The parser's own message quotes the offending text, which may be a secret.
        mark = getattr(exc, "problem_mark", None)
        line = f" near line {mark.line + 1}" if mark is not None else ""
        return Finding(
            rule, where, f"The {what} file {file} is not valid YAML{line}; fix its syntax."
        )
    return _Document(data=data, root=root)


def _policy_file(
    config_file: Path, config: ServerConfig | None, raw_config: Any, override: Path | None
) -> Path:
    named = config.policy if config is not None else None
    if config is None and isinstance(raw_config, dict):
        candidate = raw_config.get("policy")
        named = candidate if isinstance(candidate, str) else None
    if named:
        path = Path(named)
        return path if path.is_absolute() else config_file.parent / path
    return override if override is not None else DEFAULT_POLICY_PATH


def _check_bind(config: ServerConfig) -> list[Finding]:
    http = config.http
    findings: list[Finding] = []
    if not is_loopback(http.host):
        if not config.auth.enabled:
            findings.append(
                Finding(
                    "public_bind_without_auth",
                    "http.host",
                    f"HTTP binds {http.host or 'every interface'}, which other machines can "
                    "reach, with token verification disabled; set auth.enabled: true with your "
                    "identity provider's issuer and JWKS, or bind 127.0.0.1.",
                )
            )
        if not (http.tls_cert and http.tls_key):
            findings.append(
                Finding(
                    "public_bind_without_tls",
                    "http.tls_cert",
                    f"HTTP binds {http.host or 'every interface'} without TLS, so bearer tokens "
                    "and clinical data cross the network in clear text; set http.tls_cert and "
                    "http.tls_key, or bind 127.0.0.1 behind a TLS proxy on the same host.",
                )
            )
    hosts = http.allowed_hosts
    if hosts is not None and (not hosts or any(_is_wildcard_host(h) for h in hosts)):
        findings.append(
            Finding(
                "no_rebinding_protection",
                "http.allowed_hosts",
                "http.allowed_hosts is empty or holds a wildcard, so any Host header is "
                "accepted and a DNS-rebinding page can reach the server; list the exact "
                "host:port values clients use, or remove the setting to accept only the bind "
                "address and public_url.",
            )
        )
    return findings


def _is_wildcard_host(host: str) -> bool:
    return not host.strip() or any(c in host for c in "*?[")


def _check_auth(config: ServerConfig) -> list[Finding]:
    auth = config.auth
    findings: list[Finding] = []
    if not auth.enabled:
        return findings
    if config.profile == "production" and not auth.audience and not config.http.public_url:
        findings.append(
            Finding(
                "no_audience",
                "auth.audience",
                "A production server with neither auth.audience nor http.public_url accepts "
                "tokens minted for its bind address, which no identity provider issues "
                "deliberately; set http.public_url (the audience becomes <public_url>/mcp) or "
                "auth.audience to the exact audience your identity provider puts in tokens.",
            )
        )
    if not auth.jwks_file and not auth.jwks_url:
        findings.append(
            Finding(
                "no_jwks",
                "auth.jwks_url",
                "Token verification is enabled without a key set, so no token can be verified; "
                "set auth.jwks_url to your identity provider's JWKS endpoint (or auth.jwks_file).",
            )
        )
    return findings


def _check_profile(config: ServerConfig) -> list[Finding]:
    if config.profile != "production":
        return []
    findings: list[Finding] = []
    if config.transport == "stdio":
        findings.append(
            Finding(
                "stdio_in_production",
                "transport",
                "A production profile serves stdio, where identity is configuration rather than "
                "a verified token; set transport: http with auth enabled.",
            )
        )
    if config.auth.issuer == _DEV_ISSUER:
        findings.append(
            Finding(
                "dev_issuer_in_production",
                "auth.issuer",
                f"A production profile trusts the development issuer {_DEV_ISSUER!r}, whose "
                "signing key sits in the lake; set auth.issuer to your identity provider.",
            )
        )
    if config.auth.jwks_file and Path(config.auth.jwks_file).name == _DEV_JWKS_NAME:
        findings.append(
            Finding(
                "dev_issuer_in_production",
                "auth.jwks_file",
                "A production profile verifies tokens against the development JWKS that "
                "`biofed token issue` signs with; set auth.jwks_url to your identity provider's "
                "JWKS and remove auth.jwks_file.",
            )
        )
    return findings


def _is_reference(value: str) -> bool:
    """A path, file name or environment variable that points at a secret held elsewhere."""
    value = value.strip()
    return (
        "/" in value
        or value.lower().endswith(_REFERENCE_SUFFIXES)
        or bool(_ENV_REFERENCE.match(value))
    )


def _looks_like_key_material(value: str) -> str | None:
    """What kind of key material ``value`` holds, or None."""
    if _PEM_MARKER in value:
        return "a PEM block"
    if _HEX_BLOB.search(value):
        return "a long hexadecimal string"
    for match in _BASE64_BLOB.finditer(value):
        run = match.group()
        # Real key material mixes cases and digits; long identifiers and URL paths rarely do.
        if (
            any(c.isupper() for c in run)
            and any(c.islower() for c in run)
            and any(c.isdigit() for c in run)
        ):
            return "a long base64 string"
    return None


def _scalars(
    node: yaml.Node, path: tuple[str, ...], seen: set[int]
) -> Iterator[tuple[tuple[str, ...], yaml.ScalarNode]]:
    """Every scalar below ``node`` with its path; anchored nodes are visited once."""
    if isinstance(node, yaml.ScalarNode):
        yield path, node
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            if id(item) not in seen:
                seen.add(id(item))
                *parent, last = path or ("",)
                yield from _scalars(item, (*parent, f"{last}[{index}]"), seen)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if id(value) in seen:
                continue
            seen.add(id(value))
            if key.tag == _YAML_MERGE:
                # An inline merge (not an alias): its keys belong to this mapping.
                yield from _scalars(value, path, seen)
                continue
            name = key.value if isinstance(key, yaml.ScalarNode) else "?"
            yield from _scalars(value, (*path, name), seen)


def _secret_findings(
    document: _Document, prefix: str, name_maps: frozenset[str] = frozenset()
) -> list[Finding]:
    if document.root is None:
        return []
    findings: list[Finding] = []
    for path, node in _scalars(document.root, (), set()):
        if node.tag != _YAML_STR or not node.value.strip():
            continue
        where = f"{prefix}{'.'.join(path)}"
        field = re.sub(r"\[\d+\]$", "", path[-1]) if path else ""
        # Keys of a name map (scope -> description, column -> class) are names, not settings.
        in_name_map = len(path) >= 2 and path[-2] in name_maps
        material = _looks_like_key_material(node.value)
        if material is not None:
            findings.append(
                Finding(
                    "secret_in_config",
                    where,
                    f"{where} holds what looks like key material ({material}; the value is not "
                    "shown); keep keys in the environment or in the lake's restricted/ folder "
                    "and reference them, and rotate this one.",
                )
            )
        elif not in_name_map and _SECRET_NAME.search(field) and not _is_reference(node.value):
            findings.append(
                Finding(
                    "secret_in_config",
                    where,
                    f"{where} holds a literal secret (the value is not shown); put it in an "
                    "environment variable or a file under the lake's restricted/ folder, "
                    "reference that instead, and rotate this one.",
                )
            )
    return findings


def _scope_strings(data: Any) -> Iterator[tuple[str, Any]]:
    """Every scope the raw policy document names, with where it is named."""
    if not isinstance(data, dict):
        return
    scopes = data.get("scopes")
    if isinstance(scopes, dict):
        for scope in scopes:
            yield "policy scopes", scope
    roles = data.get("roles")
    if isinstance(roles, dict):
        for role_name, role in roles.items():
            if isinstance(role, dict) and isinstance(role.get("scopes"), list):
                for scope in role["scopes"]:
                    yield f"policy roles.{role_name}.scopes", scope
    datasets = data.get("datasets")
    if isinstance(datasets, dict):
        for key, dataset in datasets.items():
            if isinstance(dataset, dict):
                for field in ("read_scope", "aggregate_scope"):
                    if dataset.get(field) is not None:
                        yield f"policy datasets.{key}.{field}", dataset[field]
    break_glass = data.get("break_glass")
    if isinstance(break_glass, dict) and break_glass.get("scope") is not None:
        yield "policy break_glass.scope", break_glass["scope"]
    if data.get("audit_scope") is not None:
        yield "policy audit_scope", data["audit_scope"]


def _check_scopes(data: Any) -> list[Finding]:
    findings = []
    for where, scope in _scope_strings(data):
        if not isinstance(scope, str):
            continue
        if "*" in scope or any(c.isspace() for c in scope) or scope != scope.lower():
            findings.append(
                Finding(
                    "wildcard_scope",
                    where,
                    f"Scope {scope!r} is not one exact scope (it holds a wildcard, whitespace "
                    "or upper case); name each scope in full as a dotted lower-case name such "
                    "as biofed.research.read.",
                )
            )
    return findings


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _research_roles(data: dict[Any, Any]) -> set[str]:
    """Roles that act for research: named researcher, or holding a protocol-bound purpose."""
    protocol_bound = {
        name
        for name, purpose in _mapping(data.get("purposes")).items()
        if _mapping(purpose).get("requires_protocol") is True
    }
    return {_RESEARCH_ROLE} | {
        name
        for name, role in _mapping(data.get("roles")).items()
        if protocol_bound.intersection(_strings(_mapping(role).get("purposes")))
    }


def _identifier_finding(where: str, what: str) -> Finding:
    return Finding(
        "identifier_visible_to_research",
        where,
        f"{what}; research data must be de-identified: replace direct identifiers with "
        "pseudonyms in the research view, or remove direct_identifier from the role's classes.",
    )


def _free_text_finding(where: str, what: str) -> Finding:
    return Finding(
        "free_text_visible_to_research",
        where,
        f"{what}; free text can name people and carry instructions, and research views are "
        "served without it: drop the column from the research view, or remove free_text from "
        "the role's classes.",
    )


def _check_research_exposure(data: Any) -> list[Finding]:
    data = _mapping(data)
    research_roles = _research_roles(data)
    findings: list[Finding] = []
    for key, dataset in _mapping(data.get("datasets")).items():
        dataset = _mapping(dataset)
        for role, access in _mapping(dataset.get("access")).items():
            if role not in research_roles:
                continue
            where = f"policy datasets.{key}.access.{role}.classes"
            classes = _strings(_mapping(access).get("classes"))
            if "direct_identifier" in classes:
                findings.append(
                    _identifier_finding(where, f"Research role {role} sees direct identifiers")
                )
            if "free_text" in classes:
                findings.append(_free_text_finding(where, f"Research role {role} sees free text"))
        if str(key).startswith("research/"):
            for column, column_class in _mapping(dataset.get("columns")).items():
                where = f"policy datasets.{key}.columns.{column}"
                findings += _research_column_findings(where, column, column_class)
    return findings


def _research_column_findings(where: str, column: str, column_class: Any) -> list[Finding]:
    if column_class == "direct_identifier":
        return [_identifier_finding(where, f"Research dataset column {column} is an identifier")]
    if column_class == "free_text":
        return [_free_text_finding(where, f"Research dataset column {column} is free text")]
    return []


def _owner_finding(where: str) -> Finding:
    return Finding(
        "dataset_without_owner",
        where,
        "The dataset has no owner, so nobody answers for its quality or its access decisions; "
        "set owner to an accountable team and contact address.",
    )


def _check_policy_owners(data: Any) -> list[Finding]:
    findings = []
    for key, dataset in _mapping(_mapping(data).get("datasets")).items():
        owner = _mapping(dataset).get("owner")
        if not isinstance(owner, str) or not owner.strip():
            findings.append(_owner_finding(f"policy datasets.{key}.owner"))
    return findings


def _dataset_where(dataset: CatalogDataset) -> str:
    return f"dataset {dataset.audience}/{dataset.name}"


def _check_catalog_datasets(manifest: Manifest) -> list[Finding]:
    findings: list[Finding] = []
    for dataset in manifest.datasets:
        where = _dataset_where(dataset)
        if not dataset.owner.strip():
            findings.append(_owner_finding(where))
        if dataset.audience == "research":
            for column in dataset.columns:
                findings += _research_column_findings(
                    f"{where} column {column.name}", column.name, column.column_class
                )
    return findings


def _check_freshness_slas(manifest: Manifest) -> list[Finding]:
    return [
        Finding(
            "dataset_without_freshness_sla",
            _dataset_where(dataset),
            f"No freshness SLA matches {dataset.path}, so stale data is served without "
            "warning; add a pattern for it to quality.freshness.SLAS.",
        )
        for dataset in manifest.datasets
        if sla_for(dataset.path) is None
    ]


def _check_quality_suites(manifest: Manifest) -> list[Finding]:
    suites = frozenset(SUITE_TABLES)
    return [
        Finding(
            "dataset_without_quality_suite",
            _dataset_where(dataset),
            f"No expectation suite covers {dataset.path}, so nothing checks the data before "
            "it is served; add one to quality.suites.",
        )
        for dataset in manifest.datasets
        if dataset.path not in suites
    ]


def _check_manifest_policy(manifest: Manifest, policy: Policy) -> list[Finding]:
    findings: list[Finding] = []
    rebuild = "rebuild the catalog under this policy (`make demo` or materialise `catalog`)"
    if manifest.policy_version != policy.version:
        built = manifest.policy_version or "no recorded policy version"
        findings.append(
            Finding(
                "manifest_policy_mismatch",
                "manifest policy_version",
                f"The catalog was built under {built} but the policy is version "
                f"{policy.version}; {rebuild}.",
            )
        )
    elif manifest.policy_sha256 is not None and manifest.policy_sha256 != policy.fingerprint:
        findings.append(
            Finding(
                "manifest_policy_mismatch",
                "manifest policy_sha256",
                f"The policy changed since the catalog was built but still says version "
                f"{policy.version}; bump its version and {rebuild}.",
            )
        )
    for dataset in manifest.datasets:
        where = _dataset_where(dataset)
        rules = policy.dataset(dataset.audience, dataset.name)
        if rules is None:
            findings.append(
                Finding(
                    "dataset_not_in_policy",
                    where,
                    "The catalog serves a dataset the policy does not govern; add it to the "
                    "policy's datasets or remove it from the catalog.",
                )
            )
            continue
        declared = {c.name: c.column_class for c in dataset.columns}
        if declared != rules.columns:
            differing = sorted({*declared.items()} ^ {*rules.columns.items()})
            names = ", ".join(sorted({name for name, _ in differing}))
            findings.append(
                Finding(
                    "manifest_policy_mismatch",
                    where,
                    f"The catalog's columns or classes differ from the policy's for: {names}; "
                    f"{rebuild}.",
                )
            )
        findings += _serving_findings(dataset, where, rules)
    return findings


def _serving_findings(dataset: CatalogDataset, where: str, rules: DatasetPolicy) -> list[Finding]:
    """What would stop the server from being built over this dataset and its policy."""
    findings: list[Finding] = []
    for name in rules.suppress_below:
        column = dataset.column(name)
        if column is not None and column.type not in ("integer", "number"):
            findings.append(
                Finding(
                    "suppression_on_non_numeric_column",
                    where,
                    f"The policy suppresses rows below a minimum of {name}, which is not an "
                    "integer or number column in the catalog; correct suppress_below or the "
                    "column's type.",
                )
            )
    if dataset.column(PERSON_COLUMN) is None and any(a.aggregate for a in rules.access.values()):
        findings.append(
            Finding(
                "aggregate_without_person_column",
                where,
                f"The policy grants aggregate access but the view has no {PERSON_COLUMN} "
                "column to count people by; remove aggregate access for it.",
            )
        )
    return findings


def _tool_names(policy_data: Any, manifest: Manifest | None) -> list[str]:
    names = {str(key).rpartition("/")[2] for key in _mapping(_mapping(policy_data).get("datasets"))}
    if manifest is not None:
        names.update(d.name for d in manifest.datasets)
    return sorted(f"{verb}_{name}" for name in names for verb in ("query", "aggregate"))


def _description_texts(policy_data: Any, manifest: Manifest | None) -> Iterator[tuple[str, Any]]:
    data = _mapping(policy_data)
    for scope, text in _mapping(data.get("scopes")).items():
        yield f"policy scopes.{scope}", text
    for name, purpose in _mapping(data.get("purposes")).items():
        yield f"policy purposes.{name}.description", _mapping(purpose).get("description")
    for name, protocol in _mapping(data.get("protocols")).items():
        yield f"policy protocols.{name}.title", _mapping(protocol).get("title")
    for name, role in _mapping(data.get("roles")).items():
        yield f"policy roles.{name}.description", _mapping(role).get("description")
    if manifest is not None:
        for dataset in manifest.datasets:
            where = _dataset_where(dataset)
            yield f"{where} title", dataset.title
            yield f"{where} description", dataset.description
            for column in dataset.columns:
                yield f"{where} column {column.name}", column.description
            if dataset.federation is not None:
                yield f"{where} federation linkage_rule", dataset.federation.linkage_rule
                yield f"{where} federation consent_rule", dataset.federation.consent_rule


def _check_descriptions(policy_data: Any, manifest: Manifest | None) -> list[Finding]:
    tool_names = _tool_names(policy_data, manifest)
    return [
        Finding("instruction_in_description", found.where, f"{found.message} (lint: {found.rule})")
        for where, text in _description_texts(policy_data, manifest)
        if isinstance(text, str)
        for found in lint_text(where, text, tool_names=tool_names)
    ]


def _repo_files(root: Path) -> list[str]:
    """Paths (relative, POSIX) of the files to inspect below ``root``."""
    if (root / ".git").exists():
        try:
            listed = subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=root,
                capture_output=True,
                check=True,
                timeout=120,
            )
        except (OSError, subprocess.SubprocessError):
            pass  # no usable git: walk the folder instead
        else:
            names = listed.stdout.decode("utf-8", "surrogateescape").split("\0")
            return sorted({name for name in names if name})
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs if d not in _IGNORED_DIRS and not d.startswith(_IGNORED_DIR_PREFIXES)
        )
        base = Path(folder).relative_to(root)
        files += [(base / name).as_posix() for name in names]
    return sorted(files)


def _key_file_reason(file: Path) -> str | None:
    name = file.name.lower()
    if name in _KEY_FILE_NAMES or name.endswith(_KEY_FILE_SUFFIXES):
        return "is named like a key file"
    try:
        with file.open("rb") as handle:
            content = handle.read(_MAX_FILE_BYTES)
    except OSError:
        return None
    if _PRIVATE_KEY_BLOCK.search(content):
        return "holds a private key"
    assignment = _KEY_ASSIGNMENT.search(content)
    if assignment is not None:
        return f"assigns {assignment.group(1).decode()} a literal key"
    return None


def _check_repo(root: Path) -> list[Finding]:
    findings = []
    for relative in _repo_files(root):
        file = root / relative
        if file.is_symlink() or not file.is_file():
            continue
        reason = _key_file_reason(file)
        if reason is not None:
            findings.append(
                Finding(
                    "secret_in_repo",
                    f"file {relative}",
                    f"{relative} {reason}; remove it from the repository (and its history), "
                    "rotate the key, and keep keys in the lake's restricted/ folder or in the "
                    "environment.",
                )
            )
    return findings


def scan(
    *,
    config_path: Path | None = None,
    policy_path: Path | None = None,
    manifest_path: Path | None = None,
    repo_root: Path | None = None,
) -> ScanReport:
    """Check a deployment's configuration, policy, catalog and repository.

    Args:
        config_path: the server configuration; the shipped ``mcp_catalog/server.yaml`` when
            None.
        policy_path: the policy to scan when the configuration names none (a policy the
            configuration names wins, relative to the configuration's folder); the shipped
            ``mcp_catalog/policy.yaml`` when both are unset.
        manifest_path: a lake's ``_catalog/manifest.json``; without it the freshness, quality
            suite and manifest-policy checks are skipped (and say so in ``checked``).
        repo_root: the repository to search for committed secrets; skipped when None.

    Returns:
        The findings, in check order, and the names of the checks that ran.

    Raises:
        Nothing for unreadable inputs: they are ``config_invalid``, ``policy_invalid`` and
        ``manifest_invalid`` findings.
    """
    findings: list[Finding] = []
    checked: list[str] = []

    def ran(name: str, new: Iterable[Finding]) -> None:
        checked.append(name)
        findings.extend(new)

    config_file = Path(config_path) if config_path is not None else DEFAULT_CONFIG_PATH
    config_document = _read_yaml(config_file, "config", "config_invalid")
    config: ServerConfig | None = None
    raw_config: Any = None
    if isinstance(config_document, Finding):
        ran("config", [config_document])
    else:
        raw_config = config_document.data
        ran("secrets_in_config", _secret_findings(config_document, ""))
        try:
            config = load_config(config_file)
        except ConfigError as exc:
            ran("config", [Finding("config_invalid", f"config {config_file}", f"{exc}")])
        else:
            checked.append("config")
    if config is not None:
        ran("http_bind", _check_bind(config))
        ran("auth", _check_auth(config))
        ran("production_profile", _check_profile(config))

    policy_file = _policy_file(
        config_file, config, raw_config, Path(policy_path) if policy_path else None
    )
    policy_document = _read_yaml(policy_file, "policy", "policy_invalid")
    policy: Policy | None = None
    policy_data: Any = None
    if isinstance(policy_document, Finding):
        ran("policy", [policy_document])
    else:
        # The raw document is checked first, so one mistake that fails validation does not
        # hide the others.
        policy_data = policy_document.data
        ran("secrets_in_policy", _secret_findings(policy_document, "policy ", _POLICY_NAME_MAPS))
        ran("scopes", _check_scopes(policy_data))
        ran("research_exposure", _check_research_exposure(policy_data))
        ran("dataset_owners", _check_policy_owners(policy_data))
        try:
            policy = load_policy(policy_file)
        except PolicyError as exc:
            ran("policy", [Finding("policy_invalid", f"policy {policy_file}", f"{exc}")])
        else:
            checked.append("policy")

    manifest: Manifest | None = None
    if manifest_path is not None:
        try:
            manifest = load_manifest(manifest_path)
        except ManifestError as exc:
            ran("manifest", [Finding("manifest_invalid", f"manifest {manifest_path}", f"{exc}")])
        else:
            checked.append("manifest")
    if manifest is not None:
        ran("catalog_datasets", _check_catalog_datasets(manifest))
        ran("freshness_slas", _check_freshness_slas(manifest))
        ran("quality_suites", _check_quality_suites(manifest))
        if policy is not None:
            ran("manifest_policy", _check_manifest_policy(manifest, policy))
    else:
        checked += [
            f"{name} (skipped: needs --lake with a built catalog)"
            for name in ("freshness_slas", "quality_suites", "manifest_policy")
        ]

    ran("descriptions", _check_descriptions(policy_data, manifest))

    if repo_root is not None:
        ran("secrets_in_repo", _check_repo(Path(repo_root)))
    else:
        checked.append("secrets_in_repo (skipped: no repository)")
    return ScanReport(findings=findings, checked=checked)


def render(report: ScanReport) -> str:
    """The report as text: one ``FAIL`` line per finding, then a summary line.

    Args:
        report: what :func:`scan` returned.

    Returns:
        Lines ``FAIL <rule> <where>: <message>`` and ``biofed scan: N problems found``, or
        ``biofed scan: no problems found (checks: ...)`` when there are none.
    """
    if report.ok:
        return f"biofed scan: no problems found (checks: {', '.join(report.checked)})"
    lines = [f"FAIL {f.rule} {f.where}: {f.message}" for f in report.findings]
    count = len(report.findings)
    lines.append(f"biofed scan: {count} problem{'' if count == 1 else 's'} found")
    return "\n".join(lines)


def _checkout_root() -> Path | None:
    """The checkout this module lives in; None when biofed is installed as a package (the
    parent folder is then site-packages, which is not ours to scan)."""
    parent = Path(__file__).resolve().parent.parent
    return parent if (parent / "pyproject.toml").is_file() else None


def main(argv: Sequence[str] | None = None) -> int:
    """``biofed scan``: scan a deployment and print the report.

    Args:
        argv: the arguments after ``scan`` (``sys.argv[1:]`` when None).

    Returns:
        0 when nothing was found, 1 when something was (unreadable inputs included), 2 on a
        usage error.
    """
    parser = argparse.ArgumentParser(
        prog="biofed scan",
        description="Check a catalog deployment (configuration, policy, catalog, repository) "
        "before it serves data.",
    )
    parser.add_argument("--config", type=Path, help="server configuration (default: shipped)")
    parser.add_argument("--policy", type=Path, help="policy when the configuration names none")
    parser.add_argument("--lake", type=Path, help="lake whose _catalog/manifest.json to check")
    parser.add_argument(
        "--repo",
        type=Path,
        default=None,
        help="repository to search for committed secrets (default: this checkout)",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    manifest_path = None
    if args.lake is not None and (args.lake / MANIFEST_RELATIVE_PATH).is_file():
        manifest_path = args.lake / MANIFEST_RELATIVE_PATH
    report = scan(
        config_path=args.config,
        policy_path=args.policy,
        manifest_path=manifest_path,
        repo_root=args.repo if args.repo is not None else _checkout_root(),
    )
    print(render(report))
    return 0 if report.ok else 1
