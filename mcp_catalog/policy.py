"""Policy as code: who may see which dataset, for which purpose, with which columns.

``mcp_catalog/policy.yaml`` is the reviewed document; these models validate it on load, so a
typo (an unknown role, a class that does not exist, a scope no role can hold) fails the
catalog build and ``biofed scan`` instead of silently widening access.

The policy declares, per dataset: the class of every column (direct identifier,
quasi-identifier, sensitive, clinical, free text, pseudonym, administrative), which roles see
its rows or aggregates and which column classes each of them gets, the purposes of use it
may serve, whether consent filters it, its row cap, its minimum cell size and the row
thresholds below which nothing of it leaves the server. It also lists the clinical trials
whose data the lake holds and whether each is still blinded: the research views show a
subject's treatment arm only for studies listed as unblinded.
"""

import hashlib
import os
import re
from datetime import date
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "policy.yaml"
POLICY_ENV = "BIOFED_POLICY"

ColumnClass = Literal[
    "direct_identifier",
    "quasi_identifier",
    "sensitive",
    "clinical",
    "free_text",
    "pseudonym",
    "administrative",
]
"""What a column is, for governance. ``pseudonym`` is a per-audience keyed surrogate."""

IDENTIFYING_CLASSES: frozenset[str] = frozenset({"direct_identifier"})

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_SCOPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_DATASET = re.compile(r"^[a-z][a-z0-9_]{0,62}/[a-z][a-z0-9_]{0,62}$")
_PROTOCOL = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,40}$")
_STUDY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")

_STRICT = ConfigDict(extra="forbid", frozen=True)


class PolicyError(Exception):
    """The policy file is missing, not YAML, or does not validate; the message says where."""


class Purpose(BaseModel):
    """A purpose of use (HL7 v3 PurposeOfUse)."""

    model_config = _STRICT

    description: str
    v3_code: str
    """The HL7 v3 ActReason code recorded in audit exports (TREAT, HRESCH, ...)."""
    requires_protocol: bool = False
    """Research must name an approved protocol in the token (or stdio configuration)."""
    consent_scope: str | None = None
    """The consent scope a person must have granted for their rows to serve this purpose;
    None when the purpose does not depend on consent (treatment under HIPAA, audit)."""


class Protocol(BaseModel):
    """An approved research protocol."""

    model_config = _STRICT

    title: str
    expires: date


class Trial(BaseModel):
    """A clinical trial whose SDTM data the lake holds, keyed by its STUDYID."""

    model_config = _STRICT

    title: str
    blinded: bool = Field(strict=True)
    """True while treatment assignment must stay hidden: the research views leave the
    subjects' arms empty. Required, so a study is never unblinded by omission."""


class Role(BaseModel):
    """A role a principal holds."""

    model_config = _STRICT

    description: str
    scopes: list[str]
    """OAuth scopes a token of this role may carry; other scopes in a token are ignored."""
    purposes: list[str]
    """Purposes of use this role may act under."""
    break_glass: bool = False
    """Whether the role may be issued a break-glass grant."""


class BreakGlass(BaseModel):
    """Emergency access to one identified patient for a short window."""

    model_config = _STRICT

    reasons: list[str]
    """Reason codes a grant must carry (exact match)."""
    max_window_minutes: int = Field(ge=1, le=24 * 60)
    scope: str
    """The scope that break-glass tools require."""


class Access(BaseModel):
    """What one role gets of one dataset."""

    model_config = _STRICT

    rows: bool = False
    """A ``query_<dataset>`` tool (row-level, paged)."""
    aggregate: bool = False
    """An ``aggregate_<dataset>`` tool (suppressed counts and statistics)."""
    classes: list[ColumnClass] = []
    """Column classes this role sees in rows; other columns are masked."""
    break_glass_only: bool = False
    """Rows only under a valid break-glass grant, filtered to the granted patient."""


class Aggregation(BaseModel):
    """What an aggregate tool over the dataset may group by and summarise."""

    model_config = _STRICT

    dimensions: list[str]
    """Columns that may be grouped by (at most three at a time)."""
    measures: list[str] = []
    """Numeric columns whose mean, median and quartiles may be returned for large cells."""


class DatasetPolicy(BaseModel):
    """The governance of one dataset (``<audience>/<name>``).

    ``suppress_below`` maps numeric columns to a minimum value: the server keeps only rows
    with ``column >= minimum`` (a null value counts as below) on every read of the dataset,
    before consent, filters, sorting, paging or aggregation, so a row below a threshold
    never leaves the server whatever the caller asks. A genomic frequency view, for one,
    sets ``allele_count: 5`` so that rare variants cannot be probed for. The columns must
    be columns of the dataset; that they are integer or number columns in the catalog is
    checked when the server is built.
    """

    model_config = _STRICT

    owner: str
    purposes: list[str]
    consent: bool
    """Rows and counts are filtered by the consent the purpose requires."""
    consent_scope: str | None = None
    """The consent scope the materialised view is filtered by; purposes without a consent
    scope of their own are still held to it at query time, so revocations count at once."""
    row_cap: int = Field(ge=1, le=10_000)
    min_cell_size: int = Field(ge=2, le=1000)
    read_scope: str
    """Scope a ``query_`` tool over this dataset requires."""
    aggregate_scope: str | None = None
    """Scope an ``aggregate_`` tool over this dataset requires."""
    subject_column: str | None = None
    """For identified datasets: the column holding the patient id a break-glass grant names."""
    columns: dict[str, ColumnClass]
    access: dict[str, Access]
    aggregation: Aggregation | None = None
    # Left out of dumps when empty, so the fingerprint of a policy without thresholds is
    # what it was before the field existed (catalogs built under it stay current).
    suppress_below: dict[str, Annotated[int, Field(strict=True)]] = Field(
        {}, exclude_if=lambda value: not value
    )
    """Column -> minimum value; rows below it (or null) never leave the server."""
    max_field_chars: int | None = Field(None, ge=16, le=1_000_000, exclude_if=lambda v: v is None)
    """The most characters of one string value in this dataset's rows, where its values are
    structured and longer than the global ``limits.max_field_chars`` (a de-identified DICOM
    header); the page byte cap still holds. Left out of dumps when unset, like
    ``suppress_below``."""

    @model_validator(mode="after")
    def _consistent(self) -> "DatasetPolicy":
        if any(a.aggregate for a in self.access.values()) and (
            self.aggregation is None or self.aggregate_scope is None
        ):
            raise ValueError("a dataset with aggregate access needs aggregation and a scope")
        if self.aggregation is not None:
            unknown = [
                c
                for c in (*self.aggregation.dimensions, *self.aggregation.measures)
                if c not in self.columns
            ]
            if unknown:
                raise ValueError(f"aggregation names columns the dataset lacks: {unknown}")
        unknown = [c for c in self.suppress_below if c not in self.columns]
        if unknown:
            raise ValueError(f"suppress_below names columns the dataset lacks: {unknown}")
        if (
            any(a.break_glass_only for a in self.access.values())
            and self.subject_column not in self.columns
        ):
            raise ValueError("a break-glass dataset needs a subject_column among its columns")
        return self

    def visible_columns(self, role: str) -> list[str]:
        """The columns ``role`` sees in rows, in declaration order."""
        access = self.access.get(role)
        if access is None:
            return []
        return [name for name, kind in self.columns.items() if kind in access.classes]


class Disclosure(BaseModel):
    """Disclosure control defaults."""

    model_config = _STRICT

    ledger_window: int = Field(ge=1, le=100_000)
    """Earlier aggregate populations per principal and dataset compared against."""
    max_group_cells: int = Field(ge=1, le=100_000)


class Limits(BaseModel):
    """Output and rate limits applied to every call."""

    model_config = _STRICT

    max_page_bytes: int = Field(ge=1024)
    max_field_chars: int = Field(ge=16)
    rate_per_minute: int = Field(ge=1)
    burst: int = Field(ge=1)
    audit_subjects_cap: int = Field(ge=0)
    """How many person pseudonyms one audit record lists for the accounting of disclosures."""
    query_timeout_seconds: float = Field(10.0, gt=0, le=300)
    """A call that has not finished by then is refused (``timeout``); its result is dropped."""


class Risk(BaseModel):
    """Real-time risk scoring thresholds (0-100)."""

    model_config = _STRICT

    refuse_at: int = Field(ge=1, le=100)
    alert_at: int = Field(ge=1, le=100)


class CohortRole(BaseModel):
    """What one role may do with cohorts across the views of the cohort audience."""

    model_config = _STRICT

    pseudonyms: bool = Field(False, strict=True)
    """Whether the role may receive the members' research pseudonyms (a cohort's people,
    the members of a saved cohort, and saved cohorts as a filter of row-level tools). A role
    without it gets counts only, suppressed below the minimum cell size."""
    save: bool = Field(False, strict=True)
    """Whether the role may save a cohort as a named, versioned cohort."""


class Cohorts(BaseModel):
    """The cohort tool: which roles get it and how far it may go.

    A cohort is the set of people of one audience (joined on their pseudonym) who meet every
    criterion given; criteria read that audience's person-level views through the same
    governance as the query tools. Roles not listed get no cohort tool.
    """

    model_config = _STRICT

    audience: str
    """The audience whose person-level views the criteria read (``research``)."""
    scope: str
    """The scope the cohort tool requires; listing pseudonyms also needs the read scope of
    every view a cohort uses."""
    roles: dict[str, CohortRole]
    max_criteria: int = Field(ge=1, le=50)
    """The most criteria one cohort may have (each list entry, age and sex count one)."""
    max_members: int = Field(ge=1, le=1_000_000)
    """The most people a cohort may list or save; larger cohorts are counted only."""
    max_running_jobs: int = Field(ge=1, le=64)
    """The most background cohort jobs one principal may have running at once."""
    job_timeout_seconds: float = Field(gt=0, le=3600)
    """A background job still running after this long is reported failed and its result
    dropped."""


class Policy(BaseModel):
    """The whole policy document."""

    model_config = _STRICT

    version: str
    pseudonyms: dict[str, Literal["keyed", "surrogate"]] = {}
    """Per audience: ``keyed`` (HMAC under the audience key, the default) or ``surrogate``
    (random values kept in a restricted mapping table)."""
    scopes: dict[str, str]
    """Every scope biofed understands, with what it grants."""
    purposes: dict[str, Purpose]
    protocols: dict[str, Protocol] = {}
    # Left out of dumps when empty, like ``suppress_below``: a policy without trials keeps
    # the fingerprint it had before the section existed.
    trials: dict[str, Trial] = Field({}, exclude_if=lambda value: not value)
    """Clinical trials by STUDYID, with whether each is blinded. A study not listed counts
    as blinded (see :meth:`unblinded_studies`)."""
    roles: dict[str, Role]
    break_glass: BreakGlass
    audit_scope: str
    """Scope the compliance tools over the audit log require."""
    disclosure: Disclosure
    limits: Limits
    risk: Risk
    datasets: dict[str, DatasetPolicy]
    # Left out of dumps when absent, like ``trials``.
    cohorts: Cohorts | None = Field(None, exclude_if=lambda value: value is None)
    """The cohort tool; None offers it to no role."""

    @field_validator("scopes")
    @classmethod
    def _scope_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [s for s in value if not _SCOPE.match(s)]
        if bad:
            raise ValueError(
                f"scopes must be dotted lower-case names (no wildcards): {sorted(bad)}"
            )
        return value

    @model_validator(mode="after")
    def _references(self) -> "Policy":
        problems: list[str] = []
        names = [*self.purposes, *self.roles]
        problems += [
            f"name {n!r} is not a snake_case identifier" for n in names if not _NAME.match(n)
        ]
        problems += [
            f"protocol id {p!r} must be upper-case letters, digits and dashes"
            for p in self.protocols
            if not _PROTOCOL.match(p)
        ]
        for role_name, role in self.roles.items():
            problems += [
                f"role {role_name}: unknown scope {s!r}"
                for s in role.scopes
                if s not in self.scopes
            ]
            problems += [
                f"role {role_name}: unknown purpose {p!r}"
                for p in role.purposes
                if p not in self.purposes
            ]
        for purpose_name, purpose in self.purposes.items():
            if purpose.requires_protocol and not self.protocols:
                problems.append(f"purpose {purpose_name} requires a protocol but none is approved")
        for name, dataset in self.datasets.items():
            if not _DATASET.match(name):
                problems.append(f"dataset key {name!r} must be <audience>/<name>")
            problems += [
                f"dataset {name}: unknown purpose {p!r}"
                for p in dataset.purposes
                if p not in self.purposes
            ]
            for scope in (dataset.read_scope, dataset.aggregate_scope):
                if scope is not None and scope not in self.scopes:
                    problems.append(f"dataset {name}: unknown scope {scope!r}")
            problems += [
                f"dataset {name}: unknown role {r!r}" for r in dataset.access if r not in self.roles
            ]
        for scope in (self.break_glass.scope, self.audit_scope):
            if scope not in self.scopes:
                problems.append(f"unknown scope {scope!r}")
        problems += [
            f"trial id {t!r} must be a STUDYID of letters, digits, '_', '.' and '-'"
            for t in self.trials
            if not _STUDY.match(t)
        ]
        problems += self._cohort_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _cohort_problems(self) -> list[str]:
        cohorts = self.cohorts
        if cohorts is None:
            return []
        problems = []
        if not _NAME.match(cohorts.audience):
            problems.append(f"cohorts: audience {cohorts.audience!r} is not a snake_case name")
        if cohorts.scope not in self.scopes:
            problems.append(f"cohorts: unknown scope {cohorts.scope!r}")
        for name in cohorts.roles:
            role = self.roles.get(name)
            if role is None:
                problems.append(f"cohorts: unknown role {name!r}")
            elif cohorts.scope not in role.scopes:
                problems.append(f"cohorts: role {name} cannot hold the scope {cohorts.scope}")
        return problems

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical policy, recorded beside its version in the manifest."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def dataset(self, audience: str, name: str) -> DatasetPolicy | None:
        """The policy of one dataset, or None when the policy does not mention it."""
        return self.datasets.get(f"{audience}/{name}")

    def pseudonym_scheme(self, audience: str) -> str:
        """How an audience's identifiers become pseudonyms (``keyed`` unless set)."""
        return self.pseudonyms.get(audience, "keyed")

    def role(self, name: str) -> Role | None:
        """A role by exact name, or None."""
        return self.roles.get(name)

    def unblinded_studies(self) -> frozenset[str]:
        """The STUDYIDs whose treatment arms the research views may show.

        Fails closed: only studies listed with ``blinded: false`` are returned, so a study
        the policy does not mention stays blinded.

        Returns:
            The unblinded studies' ids, exactly as the policy spells them.
        """
        return frozenset(study for study, trial in self.trials.items() if not trial.blinded)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file.

    Args:
        path: the YAML file; by default ``$BIOFED_POLICY`` when set (so the pipeline and the
            server of one deployment share a policy), else the shipped
            ``mcp_catalog/policy.yaml``.

    Returns:
        The validated policy.

    Raises:
        PolicyError: when the file is missing, not YAML, or does not validate; the message
            names the file and the first problems.
    """
    if path is None:
        path = os.environ.get(POLICY_ENV) or DEFAULT_POLICY_PATH
    return _load(str(Path(path).resolve()))


@cache
def _load(path: str) -> Policy:
    file = Path(path)
    if not file.is_file():
        raise PolicyError(
            f"No policy file at {file}; pass --policy or restore mcp_catalog/policy.yaml."
        )
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PolicyError(f"The policy file {file} is not valid YAML.") from exc
    if isinstance(document, dict):
        # ``x-`` keys hold YAML anchors shared by datasets; they are not policy.
        document = {k: v for k, v in document.items() if not str(k).startswith("x-")}
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'policy'}: {error['msg']}"
            for error in exc.errors(include_url=False)[:5]
        )
        raise PolicyError(f"The policy file {file} does not validate: {details}") from None
