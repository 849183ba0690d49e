"""The ``biofed`` command line.

Every sub-command imports what it needs when it runs, so ``biofed serve`` starts without
loading Dagster.
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_CONTRACT = Path(__file__).resolve().parent.parent / "mcp_catalog" / "contract.json"


def _synth(args: argparse.Namespace) -> int:
    from connectors.synth import KNOWN_SILOS, write_cohort

    silos = KNOWN_SILOS if getattr(args, "silos", None) is None else args.silos.split(",")
    try:
        summary = write_cohort(Path(args.out), patients=args.patients, seed=args.seed, silos=silos)
    except ValueError as exc:
        print(f"biofed synth: {exc}", file=sys.stderr)
        return 2
    print(f"Wrote a synthetic cohort of {summary.patients} people to {summary.out}:")
    for name, count in sorted(summary.files.items()):
        print(f"  {name:<40} {count:>8} records")
    return 0


@dataclass
class MaterializeRuns:
    """The runs one materialisation took: unpartitioned assets upstream of the partitioned
    ones, one run per partition (each landed VCF), then everything downstream."""

    runs: list = field(default_factory=list)

    @property
    def success(self) -> bool:
        """True when every run succeeded."""
        return all(run.success for run in self.runs)

    @property
    def run_id(self) -> str:
        """The id of the last run (the one that built the catalog)."""
        return self.runs[-1].run_id

    @property
    def run_ids(self) -> list[str]:
        """Every run's id, in execution order."""
        return [run.run_id for run in self.runs]

    @property
    def all_events(self) -> list:
        """The events of every run, in order."""
        return [event for run in self.runs for event in run.all_events]


def materialize(
    lake: str, landing: str, selection: str | None = None, *, instance=None, log_level: str = "INFO"
) -> MaterializeRuns:
    """Materialise every asset (or a selection) in process.

    Partitioned assets (one partition per landed VCF, one per landed DICOM batch) cannot
    share a run with the others, so this registers a partition for every landed file or
    batch, then runs: the unpartitioned assets they need, one run per partition, and the
    rest. It stops at the first failed run.

    Args:
        lake: the lake root.
        landing: the landing root.
        selection: comma-separated asset keys (``silver/ehr/patients,catalog``), or None for all.
        log_level: the console log level of the run (``DEBUG`` shows every Dagster event).
        instance: a Dagster instance; by default ``$DAGSTER_HOME``'s, ``./.dagster_home`` when
            unset, so `dagster dev` shows the run.

    Returns:
        The runs, with ``success`` true only when all succeeded.
    """
    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.defs.genomics.assets import landed_vcfs, vcf_files
    from pipelines.defs.imaging.assets import dicom_batches, landed_batches

    definitions = build_definitions(lake=lake, landing=landing)
    job = definitions.resolve_implicit_global_asset_job_def()
    graph = definitions.resolve_asset_graph()
    if instance is None:
        # Record the run where `dagster dev` will look for it.
        home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
        home.mkdir(parents=True, exist_ok=True)
        settings = home / "dagster.yaml"
        if not settings.exists():
            # Clinical data platforms should not phone home unless the operator opts in.
            settings.write_text("telemetry:\n  enabled: false\n")
        instance = dg.DagsterInstance.get()
    wanted = set(graph.get_all_asset_keys())
    if selection is not None:
        wanted = {dg.AssetKey(k.strip().split("/")) for k in selection.split(",") if k.strip()}
    partitioned = {k for k in wanted if graph.get(k).partitions_def is not None}
    below = dg.AssetSelection.assets(*partitioned).downstream().resolve(graph) - partitioned
    first = wanted - partitioned - below
    last = wanted & below
    plan: list[tuple[set, str | None]] = [(first, None)]
    feeds = ((vcf_files, landed_vcfs(landing)), (dicom_batches, landed_batches(landing)))
    for feed, landed in feeds:
        keys = {k for k in partitioned if graph.get(k).partitions_def == feed}
        if not keys:
            continue
        known = set(instance.get_dynamic_partitions(feed.name))
        if [name for name in landed if name not in known]:
            instance.add_dynamic_partitions(feed.name, [n for n in landed if n not in known])
        plan += [(keys, name) for name in landed]
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    plan.append((last, None))
    result = MaterializeRuns()
    for keys, partition in plan:
        if not keys:
            continue
        run = job.execute_in_process(
            run_config=run_config,
            instance=instance,
            asset_selection=sorted(keys, key=lambda k: k.to_user_string()),
            partition_key=partition,
            raise_on_error=False,
        )
        result.runs.append(run)
        if not run.success:
            break
    return result


def _materialize(args: argparse.Namespace) -> int:
    started = time.monotonic()
    result = materialize(args.lake, args.landing, args.select, log_level=args.log_level)
    if not result.success:
        print(
            "The run failed; see the messages above, or open it with `make dev`.",
            file=sys.stderr,
        )
        return 1
    print(f"Materialised in {time.monotonic() - started:.1f} s (run {result.run_id}).")
    return 0


def _summary(lake_root: str) -> str:
    import polars as pl

    from mcp_catalog.manifest import load_manifest
    from pipelines.lake import Lake
    from pipelines.quality_record import QUALITY_RESULTS_PATH

    lake = Lake(lake_root)
    root = lake.local_path("")
    quality = lake.read(QUALITY_RESULTS_PATH) if lake.table(QUALITY_RESULTS_PATH) else None
    lines = [f"{'table':<42} {'rows':>9} {'version':>8}  quality"]
    for layer in ("bronze", "restricted", "silver", "gold", "_rejects"):
        for log in sorted((root / layer).rglob("_delta_log")):
            path = log.parent.relative_to(root).as_posix()
            version = lake.version(path)
            verdict = "-"
            if quality is not None:
                row = quality.filter(pl.col("table") == path, pl.col("delta_version") == version)
                if row.height:
                    latest = row.sort("evaluated_at").row(-1, named=True)
                    verdict = "pass" if latest["success"] else "FAIL"
                    verdict += f" ({latest['expectations']} expectations"
                    verdict += (
                        f", {latest['failed_warnings']} warnings)"
                        if latest["failed_warnings"]
                        else ")"
                    )
            lines.append(f"{path:<42} {lake.row_count(path):>9} {version:>8}  {verdict}")
    manifest_path = root / "_catalog" / "manifest.json"
    manifest = load_manifest(manifest_path)
    freshness = sorted({d.freshness.status for d in manifest.datasets if d.freshness})
    lines.append("")
    lines.append(
        f"Catalog manifest: {manifest_path} ({len(manifest.datasets)} datasets; "
        f"freshness: {', '.join(freshness) or 'unknown'})"
    )
    return "\n".join(lines)


def _connect_text(lake_root: str) -> str:
    biofed = Path(sys.argv[0]).resolve()
    lake = Path(lake_root).resolve()
    return f"""
Connect an MCP host over stdio (Claude Desktop: claude_desktop_config.json; VS Code:
.vscode/mcp.json uses "servers" instead of "mcpServers"); it acts as the researcher identity
in mcp_catalog/server.yaml:

  {{"mcpServers": {{"biofed": {{"command": "{biofed}",
                              "args": ["serve", "--lake", "{lake}"]}}}}}}

Or over HTTP with OAuth bearer tokens (one per user, role and purpose):

  {biofed} serve --http --lake {lake}
  {biofed} token issue --lake {lake} --role researcher --purpose research \\
      --protocol BIOFED-DEMO-001

Things to ask: "How common is rs7903146 (chr10:112998590) in the cohort?" (a region query of
variant_frequencies); "How many consented people have type 2 diabetes?" (aggregate_conditions);
"Which CT studies of the chest were done last year, and how many series per modality are
there?" (query_imaging_studies by primary_modality, body_part and study_date;
aggregate_imaging_series); "What is the mean HbA1c per site, whichever unit each lab
reports in?" (aggregate_lab_results by site for loinc 4548-4: one unit, %); "Which adverse
events were most common in the trial, by body system?" (aggregate_trial_adverse_events; the
arm stays hidden while BIOFED-01 is blinded).

Verify the audit log of every call:  {biofed} audit verify --lake {lake}
Browse the asset graph and runs:  make dev
  (DAGSTER_HOME={os.environ.get("DAGSTER_HOME")} .venv/bin/dagster dev -w workspace.yaml)"""


def _demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if _synth(args) != 0:
        return 1
    result = materialize(args.lake, args.out, log_level="WARNING")
    if not result.success:
        print("The demo run failed; see the messages above.", file=sys.stderr)
        return 1
    print(
        f"\nMaterialised every asset in {time.monotonic() - started:.1f} s "
        f"(Dagster run {result.run_id}).\n"
    )
    print(_summary(args.lake))
    index = write_report(args.lake, args.report)
    print(f"\nCompliance report (lineage, quality, freshness, access): {Path(index).resolve()}")
    print(_connect_text(args.lake))
    from mcp_catalog.serve import ServeError
    from pipelines.cohort_examples import example_calls_text

    try:
        print(example_calls_text(args.lake))
    except ServeError as exc:
        print(f"The example cohort questions could not be asked: {exc}", file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    from mcp_catalog.config import ConfigError, load_config
    from mcp_catalog.serve import Identity, run_http, run_stdio

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"biofed serve: {exc}", file=sys.stderr)
        return 2
    http = config.http.model_copy(
        update={
            k: v
            for k, v in {
                "host": args.host,
                "port": args.port,
                "tls_cert": args.tls_cert,
                "tls_key": args.tls_key,
            }.items()
            if v is not None
        }
    )
    config = config.model_copy(update={"http": http})
    if args.http or config.transport == "http":
        run_http(args.lake, config=config, accept_contract=args.accept_contract)
        return 0
    identity = Identity(
        principal=args.principal, role=args.role, purpose=args.purpose, protocol=args.protocol
    )
    run_stdio(args.lake, config=config, identity=identity, accept_contract=args.accept_contract)
    return 0


def _token(args: argparse.Namespace) -> int:
    from mcp_catalog.auth import issue_dev_token
    from mcp_catalog.config import ConfigError, load_config
    from mcp_catalog.policy import PolicyError, load_policy
    from mcp_catalog.principal import PrincipalError, check_purpose
    from mcp_catalog.serve import policy_path

    try:
        config = load_config(args.config)
        http = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
        config = config.model_copy(update={"http": config.http.model_copy(update=http)})
        policy = load_policy(policy_path(config))
        check_purpose(policy, args.role, args.purpose, args.protocol, datetime.now(UTC))
    except (ConfigError, PolicyError, PrincipalError) as exc:
        print(f"biofed token issue: {exc}", file=sys.stderr)
        return 2
    if config.auth.issuer != "biofed-dev":
        print(
            "biofed token issue: the configuration trusts another issuer; get tokens from it.",
            file=sys.stderr,
        )
        return 2
    scopes = args.scope or policy.roles[args.role].scopes
    token = issue_dev_token(
        Path(args.lake),
        subject=args.subject,
        role=args.role,
        purpose=args.purpose,
        audience=config.audience(),
        scopes=scopes,
        protocol=args.protocol,
        ttl_seconds=args.ttl,
        break_glass_patient=args.break_glass_patient,
        break_glass_reason=args.break_glass_reason,
        break_glass_minutes=args.break_glass_minutes,
    )
    print(token)
    return 0


def _scan(args: argparse.Namespace) -> int:
    from mcp_catalog.scan import main as scan_main

    argv = []
    for flag, value in (
        ("--config", args.config),
        ("--policy", args.policy),
        ("--lake", args.lake),
    ):
        if value is not None:
            argv += [flag, value]
    return scan_main(argv)


def _audit(args: argparse.Namespace) -> int:
    from mcp_catalog.audit import AuditError
    from mcp_catalog.serve import open_audit

    try:
        log = open_audit(args.lake)
        if args.audit_command == "verify":
            report = log.verify()
            if report.ok:
                print(f"Audit chain verified: {report.records} records, no gap, no edit.")
                return 0
            print(f"Audit chain BROKEN at line {report.first_bad}: {report.problem}")
            return 1
        if args.audit_command == "export":
            count = log.export_fhir(Path(args.out))
            print(f"Wrote {count} FHIR AuditEvent resources to {args.out}.")
            return 0
        return _alerts(log, args)
    except AuditError as exc:
        print(f"biofed audit: {exc}", file=sys.stderr)
        return 2


def _alerts(log, args: argparse.Namespace) -> int:
    import json

    from mcp_catalog.policy import load_policy

    threshold = args.min_risk if args.min_risk is not None else load_policy().risk.alert_at
    seen: set[int] = set()
    since = datetime.fromisoformat(args.since) if args.since else None
    while True:
        found = log.alerts(min_risk=threshold, since=since, limit=args.limit)
        for record in reversed(found):
            if record["seq"] in seen:
                continue
            seen.add(record["seq"])
            print(
                json.dumps(
                    {
                        k: record.get(k)
                        for k in (
                            "time",
                            "seq",
                            "kind",
                            "principal",
                            "role",
                            "purpose",
                            "action",
                            "dataset",
                            "decision",
                            "reason",
                            "risk_score",
                            "risk_reasons",
                            "correlation_id",
                        )
                    }
                ),
                flush=True,
            )
        if not args.follow:
            return 0
        time.sleep(1.0)


def _snapshot(args: argparse.Namespace) -> int:
    import anyio

    from mcp_catalog.config import load_config
    from mcp_catalog.contract import contract_json, contract_sha256, render_contracts
    from mcp_catalog.serve import ServeError, open_service

    try:
        service = open_service(args.lake, load_config(args.config))
    except ServeError as exc:
        print(f"biofed catalog snapshot: {exc}", file=sys.stderr)
        return 2
    rendered = anyio.run(render_contracts, service)
    text = contract_json(rendered)
    out = Path(args.out)
    changed = not out.exists() or out.read_text() != text
    out.write_text(text)
    print(f"{'Updated' if changed else 'Unchanged'}: {out} (sha256 {contract_sha256(rendered)})")
    return 0


def write_report(lake: str, out: str) -> Path:
    """Build the Data Docs and the compliance report of a lake.

    Returns:
        The report's index.html.
    """
    from pipelines.checks import DATA_DOCS_PATH
    from pipelines.lake import Lake
    from quality.report import collect_report_data, render_report
    from quality.validation import DataDocs

    docs_root = Lake(lake).local_path(DATA_DOCS_PATH)
    docs_index = DataDocs(docs_root).build() if docs_root.exists() else None
    data = collect_report_data(lake, data_docs_index=docs_index)
    return render_report(replace(data, access=_access(lake)), out)


def _access(lake: str):
    """The access summary of a lake's audit log; None when there is no log to read."""
    from mcp_catalog.access_report import access_summary
    from mcp_catalog.audit import AuditError
    from mcp_catalog.policy import PolicyError, load_policy
    from mcp_catalog.serve import AUDIT_DIR, AUDIT_KEY_FILE, open_audit
    from quality.report.model import AccessSummary

    root = Path(lake)
    if not (root / AUDIT_DIR).is_dir():
        # No server has written here yet: nobody has called the catalog.
        return AccessSummary(0, None, None, None, None, (), (), (), (), (), ())
    if not (os.environ.get("BIOFED_AUDIT_KEY") or (root / AUDIT_KEY_FILE).is_file()):
        return None
    try:
        return access_summary(open_audit(root), alert_at=load_policy().risk.alert_at)
    except (AuditError, PolicyError) as exc:
        print(f"biofed report: the audit log could not be summarised: {exc}", file=sys.stderr)
        return None


def _report(args: argparse.Namespace) -> int:
    from mcp_catalog.manifest import ManifestError

    started = time.monotonic()
    try:
        index = write_report(args.lake, args.out)
    except ManifestError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"Report written to {index} in {time.monotonic() - started:.1f} s.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``biofed`` command."""
    parser = argparse.ArgumentParser(
        prog="biofed",
        description="Federate siloed life-sciences data "
        "into a governed Delta Lake and serve it to AI agents over MCP.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    lake_default = os.environ.get("BIOFED_LAKE", "lake")

    synth = sub.add_parser("synth", help="write a deterministic synthetic linked cohort")
    synth.add_argument("--patients", type=int, default=500)
    synth.add_argument("--seed", type=int, default=7)
    synth.add_argument("--out", default="landing")
    synth.add_argument(
        "--silos",
        help="comma-separated silos to write (ehr,genomics,imaging,lab,trials); all by default",
    )
    synth.set_defaults(func=_synth)

    mat = sub.add_parser("materialize", help="materialise every asset (or --select) in process")
    mat.add_argument("--lake", default=lake_default)
    mat.add_argument("--landing", default=os.environ.get("BIOFED_LANDING", "landing"))
    mat.add_argument("--select", help="comma-separated asset keys, e.g. bronze/ehr/patients")
    mat.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    mat.set_defaults(func=_materialize)

    demo = sub.add_parser(
        "demo", help="synthesise a cohort, materialise everything, print a summary"
    )
    demo.add_argument("--patients", type=int, default=500)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--landing", dest="out", default="landing")
    demo.add_argument("--lake", default=lake_default)
    demo.add_argument("--report", default="reports")
    demo.set_defaults(func=_demo)

    serve = sub.add_parser(
        "serve", help="run the MCP catalog server (stdio, or OAuth-protected HTTP with --http)"
    )
    serve.add_argument("--lake", default=lake_default)
    serve.add_argument("--config", help="server configuration (default: the shipped one)")
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP")
    serve.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8765)")
    serve.add_argument("--tls-cert", help="PEM certificate: serve HTTPS, TLS 1.3 minimum")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.add_argument("--role", default=os.environ.get("BIOFED_ROLE"), help="stdio role")
    serve.add_argument("--purpose", help="stdio purpose of use")
    serve.add_argument("--protocol", help="stdio research protocol id")
    serve.add_argument("--principal", help="stdio principal name (for the audit log)")
    serve.add_argument(
        "--accept-contract",
        action="store_true",
        help="start even if the tool surface differs from the reviewed contract",
    )
    serve.set_defaults(func=_serve)

    token = sub.add_parser("token", help="local development tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    issue = token_sub.add_parser("issue", help="sign a token with the lake's development key")
    issue.add_argument("--lake", default=lake_default)
    issue.add_argument("--config", help="server configuration (for the audience)")
    issue.add_argument("--host", help="the --host the server was started with")
    issue.add_argument("--port", type=int, help="the --port the server was started with")
    issue.add_argument("--role", required=True)
    issue.add_argument("--purpose", required=True)
    issue.add_argument("--protocol")
    issue.add_argument("--subject", default=os.environ.get("USER", "local-user"))
    issue.add_argument("--scope", action="append", help="a scope (default: the role's scopes)")
    issue.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    issue.add_argument("--break-glass-patient", help="FHIR Patient id of a break-glass grant")
    issue.add_argument("--break-glass-reason", help="reason code of the grant")
    issue.add_argument("--break-glass-minutes", type=int, default=60)
    issue.set_defaults(func=_token)

    scan = sub.add_parser("scan", help="check a deployment's configuration and policy")
    scan.add_argument("--config")
    scan.add_argument("--policy")
    scan.add_argument("--lake", default=None)
    scan.set_defaults(func=_scan)

    audit = sub.add_parser("audit", help="verify, export and watch the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the hash chain; name the first bad record")
    verify.add_argument("--lake", default=lake_default)
    verify.set_defaults(func=_audit)
    export = audit_sub.add_parser("export", help="write FHIR AuditEvent NDJSON")
    export.add_argument("--lake", default=lake_default)
    export.add_argument("--out", required=True)
    export.set_defaults(func=_audit)
    alerts = audit_sub.add_parser("alerts", help="list high-risk events (--follow to watch)")
    alerts.add_argument("--lake", default=lake_default)
    alerts.add_argument("--min-risk", type=int)
    alerts.add_argument("--since", help="ISO 8601 time with zone")
    alerts.add_argument("--limit", type=int, default=100)
    alerts.add_argument("--follow", action="store_true")
    alerts.set_defaults(func=_audit)

    report = sub.add_parser("report", help="write the compliance report (static HTML)")
    report.add_argument("--lake", default=lake_default)
    report.add_argument("--out", default="reports")
    report.set_defaults(func=_report)

    catalog = sub.add_parser("catalog", help="catalog and tool-contract commands")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    snap = catalog_sub.add_parser(
        "snapshot", help="regenerate the reviewed tools/resources contract"
    )
    snap.add_argument("--lake", default=lake_default)
    snap.add_argument("--config", help="server configuration (default: the shipped one)")
    snap.add_argument("--out", default=str(DEFAULT_CONTRACT))
    snap.set_defaults(func=_snapshot)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``biofed`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (`biofed audit alerts | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
