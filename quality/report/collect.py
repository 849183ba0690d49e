"""Collect what the compliance report shows from a lake: logs, manifest and metadata tables.

The collector reads Delta transaction logs (row counts, versions, commit times), the catalog
manifest, and tables that hold no clinical values: the silos' ledgers of landed sources
(``bronze/<silo>/files``, ``vcf_files``, ``batches``), the quarantine (``_rejects/...``,
counted by reason), the quality history (``_quality/results``), the lab mapping report
(``silver/lab/mapping_report``: codes and units that did not conform) and the SDTM
conformance findings (``bronze/trials/findings``). Of ``silver/lab/lab_results`` it reads
only the site, source kind, map version and status columns, and of the restricted person
crosswalk only its source system, identifier type, link rule and person key columns, and
counts them (never an identifier). It never reads a row of any other table, and from the
logs it takes ``num_records`` and ``size_bytes`` only, never the min/max statistics.
"""

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl
from deltalake import DeltaTable

from quality.lineage import lineage_graph, read_events_with_errors
from quality.report.lab_mapping import SUMMARY_INPUT_COLUMNS, site_summary
from quality.report.model import (
    FreshnessInfo,
    GoldView,
    GraphNode,
    IdentityConflict,
    IdentityLinkage,
    IdentitySystem,
    LabMapping,
    LabMappingIssue,
    LabSiteMapping,
    LineageGraph,
    QualityOutcome,
    QualityRun,
    QualitySuite,
    RejectCount,
    ReportData,
    SdtmConformance,
    SdtmRuleFindings,
    SourceFile,
    Summary,
    TableInfo,
)

MANIFEST = PurePosixPath("_catalog/manifest.json")
QUALITY_RESULTS = "_quality/results"
LINEAGE_EVENTS = PurePosixPath("_lineage/events.ndjson")
LAB_RESULTS = "silver/lab/lab_results"
LAB_MAPPING_REPORT = "silver/lab/mapping_report"
SDTM_FINDINGS = "bronze/trials/findings"
CROSSWALK = "restricted/person_crosswalk"
IDENTITY_CONFLICTS = "_rejects/identity/crosswalk"
CROSSWALK_COUNTED_COLUMNS = ("source_system", "identifier_type", "link_rule", "person_key")
"""The crosswalk columns the report counts: never ``identifier``."""
IDENTITY_CONFLICT_COLUMNS = ("source_system", "identifier_type", "reason")
"""The quarantine columns the report counts (not the digest or the locator)."""
TRIALS_SILO = "trials"
MAPPING_REPORT_COLUMNS = (
    "site",
    "source_kind",
    "map_version",
    "issue",
    "code",
    "code_system",
    "code_display",
    "unit",
    "analyte",
    "rows",
)
"""``silver/lab/mapping_report``'s columns: all of them name codes and units, never values."""
SDTM_FINDINGS_COLUMNS = ("source_file", "dataset", "rule", "severity", "variable", "rows")
"""The columns of ``bronze/trials/findings`` the report reads (not ``message``)."""
SEVERITY_RANK = {"error": 0, "critical": 0, "warning": 1}
GRAPH_LAYERS = frozenset({"source", "bronze", "rejects", "restricted", "silver", "gold", "mcp"})
_LAYER_OF_SEGMENT = {
    "bronze": "bronze",
    "restricted": "restricted",
    "silver": "silver",
    "gold": "gold",
    "_rejects": "rejects",
    "_quality": "quality",
    "_catalog": "catalog",
    "_audit": "audit",
    "_lineage": "lineage",
}


def collect_report_data(
    lake_root: str | Path, *, data_docs_index: Path | None = None, now: datetime | None = None
) -> ReportData:
    """Collect the compliance report's data from a lake.

    Args:
        lake_root: the lake folder (``lake/``).
        data_docs_index: the Great Expectations Data Docs ``index.html``, or None.
        now: the reference time for ages and the generated-at stamp (timezone-aware);
            the current time by default.

    Returns:
        The report data; parts the pipeline has not written yet (quality history, lineage
        events, freshness blocks) come back empty or None and render as "not yet recorded".

    Raises:
        FileNotFoundError: the lake folder does not exist.
        ValueError: ``now`` is naive.
    """
    root = Path(lake_root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(
            f"No lake at {root}: pass the lake folder the pipeline writes (`biofed demo` "
            "makes one under ./lake)."
        )
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware, e.g. datetime.now(UTC)")
    now = now.astimezone(UTC)
    notes: list[str] = []

    tables = tuple(_table_info(root, path) for path in find_tables(root))
    notes += [f"{t.path}: could not be read ({t.error})." for t in tables if t.error]
    by_path = {t.path: t for t in tables}

    manifest_path = root / MANIFEST
    manifest = _load_manifest(manifest_path, notes)
    gold_views = tuple(
        sorted(
            (_gold_view(d, now) for d in manifest.get("datasets", [])),
            key=lambda v: (v.path, v.name),
        )
    )

    quality_recorded = by_path.get(QUALITY_RESULTS) is not None
    quality = _quality_suites(root, quality_recorded, notes)
    quality = _with_manifest_quality(quality, manifest.get("datasets", []))

    source_files = tuple(
        f for t in tables if _is_ledger(t) for f in _ledger_rows(root, t.path, notes)
    )
    rejects = tuple(
        r for t in tables if t.layer == "rejects" for r in _reject_counts(root, t.path, notes)
    )

    # Events name paths as configured (symlinks kept), while ``root`` is resolved.
    roots = sorted({root.as_posix(), Path(lake_root).absolute().as_posix()})
    lineage = _lineage(root, roots, tables, gold_views, source_files, rejects, notes)

    lab_mapping = _lab_mapping(root, by_path, notes)
    sdtm = _sdtm_conformance(root, by_path, source_files, notes)
    identity = _identity_linkage(root, by_path, notes)

    docs = None
    if data_docs_index is not None:
        docs_path = Path(data_docs_index).resolve()
        if docs_path.is_file():
            docs = str(docs_path)
        else:
            notes.append(f"Great Expectations Data Docs index not found at {docs_path}.")

    latest = [s.latest for s in quality]
    statuses = [v.freshness.status for v in gold_views if v.freshness is not None]
    summary = Summary(
        tables=len(tables),
        rows=sum(t.rows or 0 for t in tables),
        gold_views=len(gold_views),
        quality_passed=sum(r.success for r in latest) if latest else None,
        quality_failed=sum(not r.success for r in latest) if latest else None,
        stale_views=statuses.count("stale"),
        warn_views=statuses.count("warn"),
        rejected_records=sum(t.rows or 0 for t in tables if t.layer == "rejects"),
        unmapped_lab_codes=_distinct_issues(lab_mapping, "unmapped_code", "code"),
        unknown_lab_units=_distinct_issues(lab_mapping, "unknown_unit", "unit"),
        sdtm_errors=_findings_of(sdtm, "error"),
        sdtm_warnings=_findings_of(sdtm, "warning"),
    )
    return ReportData(
        lake_root=str(root),
        generated_at=now,
        summary=summary,
        tables=tables,
        manifest_found=manifest_path.is_file(),
        manifest_generated_at=_parse_time(manifest.get("generated_at")),
        gold_views=gold_views,
        quality_recorded=quality_recorded,
        quality=quality,
        source_files=source_files,
        rejects=rejects,
        lineage=lineage,
        data_docs_index=docs,
        notes=tuple(notes),
        lab_mapping=lab_mapping,
        sdtm=sdtm,
        identity=identity,
    )


def find_tables(root: Path) -> list[str]:
    """Lake-relative paths of every Delta table under ``root`` (folders with a ``_delta_log``).

    Returns:
        POSIX paths, sorted.
    """
    found = []
    for folder, dirs, _files in os.walk(root):
        if "_delta_log" in dirs:
            found.append(Path(folder).relative_to(root).as_posix())
            dirs.clear()  # a Delta table's folder holds data files, never another table
        else:
            dirs.sort()
    return sorted(found)


def layer_of(path: str) -> str:
    """The layer of a lake path, from its first segment (``other`` when unknown)."""
    return _LAYER_OF_SEGMENT.get(path.split("/", 1)[0], "other")


def _table_info(root: Path, path: str) -> TableInfo:
    try:
        table = DeltaTable(str(root / path))
        # Only these two columns: the log's min/max statistics hold clinical values.
        actions = pl.DataFrame(
            table.get_add_actions(flatten=True).select(["num_records", "size_bytes"])
        )
        records = actions.get_column("num_records").to_list()
        history = table.history(1)
    except Exception as exc:  # any unreadable table is reported, not fatal
        return TableInfo(
            path, layer_of(path), None, 0, 0, None, None, None, None, error=type(exc).__name__
        )
    commit = history[0] if history else {}
    stamp = commit.get("timestamp")
    user = commit.get("userMetadata")
    run_id = commit.get("dagster_run_id") or (
        user.get("dagster_run_id") if isinstance(user, dict) else None
    )
    return TableInfo(
        path=path,
        layer=layer_of(path),
        rows=None if any(r is None for r in records) else sum(records),
        files=actions.height,
        size_bytes=sum(s or 0 for s in actions.get_column("size_bytes").to_list()),
        version=table.version(),
        last_commit_at=datetime.fromtimestamp(stamp / 1000, UTC) if stamp is not None else None,
        last_operation=commit.get("operation"),
        last_run_id=str(run_id) if run_id else None,
    )


def _load_manifest(path: Path, notes: list[str]) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notes.append(f"The catalog manifest could not be read ({type(exc).__name__}).")
        return {}
    if not isinstance(manifest, dict) or not isinstance(manifest.get("datasets", []), list):
        notes.append("The catalog manifest is not a manifest (no datasets list).")
        return {}
    return manifest


def _gold_view(dataset: dict[str, Any], now: datetime) -> GoldView:
    name = str(dataset.get("name", "?"))
    block = dataset.get("freshness")
    freshness = None
    if isinstance(block, dict):
        newest = _parse_time(block.get("newest_source_at"))
        freshness = FreshnessInfo(
            status=str(block.get("status") or "unknown"),
            newest_source_at=newest,
            age_seconds=(now - newest).total_seconds() if newest is not None else None,
            warn_after_seconds=_int(block.get("warn_after_seconds")),
            fail_after_seconds=_int(block.get("fail_after_seconds")),
            checked_at=_parse_time(block.get("checked_at")),
        )
    return GoldView(
        name=name,
        audience=str(dataset.get("audience", "")),
        path=str(dataset.get("path", "")),
        title=str(dataset.get("title", name)),
        owner=str(dataset.get("owner", "")),
        tool=f"query_{name}",
        resource=f"catalog://datasets/{name}",
        rows=_int(dataset.get("row_count")),
        delta_version=_int(dataset.get("delta_version")),
        last_materialized=_parse_time(dataset.get("last_materialized")),
        upstream=tuple(sorted(str(u) for u in dataset.get("upstream") or [])),
        columns=len(dataset.get("columns") or []),
        freshness=freshness,
    )


def _read_columns(root: Path, path: str, wanted: Iterable[str]) -> pl.DataFrame:
    """Only the named columns (those present) of a metadata table."""
    present = {f.name for f in DeltaTable(str(root / path)).schema().fields}
    columns = [c for c in wanted if c in present]
    if not columns:
        return pl.DataFrame()
    return pl.read_delta(str(root / path), columns=columns)


def _quality_suites(root: Path, recorded: bool, notes: list[str]) -> tuple[QualitySuite, ...]:
    if not recorded:
        return ()
    wanted = (
        "table",
        "suite",
        "delta_version",
        "evaluated_at",
        "success",
        "rows",
        "expectations",
        "failed_errors",
        "failed_warnings",
        "outcomes_json",
        "dagster_run_id",
    )
    frame = _read_columns(root, QUALITY_RESULTS, wanted)
    missing = {"table", "suite", "success"} - set(frame.columns)
    if missing:
        notes.append(f"{QUALITY_RESULTS} lacks columns {sorted(missing)}; quality not shown.")
        return ()
    frame = frame.with_columns(
        [pl.lit(None).alias(c) for c in wanted if c not in frame.columns]
    ).sort(["table", "suite", "evaluated_at", "delta_version"], nulls_last=False)
    suites = []
    for (table, suite), group in frame.group_by(["table", "suite"], maintain_order=True):
        rows = group.to_dicts()
        runs = tuple(
            QualityRun(
                delta_version=_int(r["delta_version"]),
                evaluated_at=_utc(r["evaluated_at"]),
                success=bool(r["success"]),
                rows=_int(r["rows"]),
                expectations=_int(r["expectations"]) or 0,
                failed_errors=_int(r["failed_errors"]) or 0,
                failed_warnings=_int(r["failed_warnings"]) or 0,
                dagster_run_id=r["dagster_run_id"],
            )
            for r in rows
        )
        outcomes = _outcomes(rows[-1]["outcomes_json"], f"{table} / {suite}", notes)
        suites.append(QualitySuite(str(table), str(suite), runs, outcomes))
    return tuple(sorted(suites, key=lambda s: (s.table, s.suite)))


def _outcomes(raw: str | None, where: str, notes: list[str]) -> tuple[QualityOutcome, ...]:
    if not raw:
        return ()
    try:
        items = json.loads(raw)
    except ValueError:
        notes.append(f"The latest outcomes of {where} are not valid JSON.")
        return ()
    outcomes = [
        QualityOutcome(
            expectation=str(o.get("expectation", "")),
            column=None if o.get("column") is None else str(o["column"]),
            description=str(o.get("description") or o.get("expectation", "")),
            severity=str(o.get("severity") or "error"),
            success=bool(o.get("success")),
            element_count=_int(o.get("element_count")),
            unexpected_count=_int(o.get("unexpected_count")),
            unexpected_percent=_float(o.get("unexpected_percent")),
        )
        for o in items
        if isinstance(o, dict)
    ]
    severity_rank = {"error": 0, "critical": 0, "warning": 1}
    return tuple(
        sorted(
            outcomes,
            key=lambda o: (
                o.success,
                severity_rank.get(o.severity, 2),
                o.column or "",
                o.expectation,
                o.description,
            ),
        )
    )


def _with_manifest_quality(
    suites: tuple[QualitySuite, ...], datasets: list[dict[str, Any]]
) -> tuple[QualitySuite, ...]:
    """Add the manifest's quality summaries of views the results table does not cover."""
    known = {(s.table, s.suite) for s in suites}
    extra = []
    for d in datasets:
        block = d.get("quality")
        if not isinstance(block, dict) or (d.get("path"), block.get("suite")) in known:
            continue
        run = QualityRun(
            delta_version=_int(d.get("delta_version")),
            evaluated_at=_parse_time(block.get("evaluated_at")),
            success=bool(block.get("success")),
            rows=_int(d.get("row_count")),
            expectations=_int(block.get("expectations")) or 0,
            failed_errors=_int(block.get("failed_errors")) or 0,
            failed_warnings=_int(block.get("failed_warnings")) or 0,
            dagster_run_id=None,
        )
        extra.append(
            QualitySuite(str(d.get("path")), str(block.get("suite")), (run,), (), "manifest")
        )
    return tuple(sorted((*suites, *extra), key=lambda s: (s.table, s.suite)))


LEDGERS: dict[str, dict[str, str]] = {
    "files": {},
    "vcf_files": {"rejected": "rejects"},
    "batches": {
        "batch": "source_file",
        "content_sha256": "source_sha256",
        "instances": "records",
        "rejected": "rejects",
    },
}
"""The bronze tables that are a silo's ledger of landed sources (``bronze/<silo>/<name>``),
with the renames of their columns to the files ledger's: the EHR's files, the VCFs, the
DICOM batches."""


def _is_ledger(table: TableInfo) -> bool:
    parts = table.path.split("/")
    return table.layer == "bronze" and len(parts) == 3 and parts[2] in LEDGERS and not table.error


def _ledger_rows(root: Path, path: str, notes: list[str]) -> list[SourceFile]:
    wanted = (
        "source_file",
        "source_sha256",
        "bytes",
        "records",
        "rejects",
        "ingested_at",
        "source_modified_at",
    )
    renames = LEDGERS.get(path.split("/")[2], {})
    frame = _read_columns(root, path, [*wanted, *renames]).rename(
        lambda name: renames.get(name, name)
    )
    if "source_file" not in frame.columns:
        notes.append(f"{path} has no source_file column; not read as a files ledger.")
        return []
    frame = frame.with_columns([pl.lit(None).alias(c) for c in wanted if c not in frame.columns])
    silo = path.split("/")[1]
    return [
        SourceFile(
            ledger=path,
            silo=silo,
            source_file=str(r["source_file"]),
            sha256=str(r["source_sha256"] or ""),
            bytes=_int(r["bytes"]),
            records=_int(r["records"]),
            rejects=_int(r["rejects"]),
            ingested_at=_utc(r["ingested_at"]),
            source_modified_at=_utc(r["source_modified_at"]),
        )
        for r in frame.sort("source_file").to_dicts()
    ]


def _reject_counts(root: Path, path: str, notes: list[str]) -> list[RejectCount]:
    frame = _read_columns(root, path, ("source", "reason"))
    if "reason" not in frame.columns:
        notes.append(f"{path} has no reason column; rejects not counted by reason.")
        return []
    if "source" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("source"))
    counts = (
        frame.with_columns(pl.col("source", "reason").cast(pl.String).fill_null("(none)"))
        .group_by(["source", "reason"])
        .len()
        .sort(["source", "reason"])
    )
    return [RejectCount(path, r["source"], r["reason"], int(r["len"])) for r in counts.to_dicts()]


# ---------------------------------------------------------------------------------------------
# Lab terminology and SDTM conformance


def _lab_mapping(root: Path, by_path: dict[str, TableInfo], notes: list[str]) -> LabMapping | None:
    results = _readable(by_path, LAB_RESULTS)
    report = _readable(by_path, LAB_MAPPING_REPORT)
    if results is None and report is None:
        return None
    sites: tuple[LabSiteMapping, ...] = ()
    if results is not None:
        # Only the columns counted: the table's other columns hold patient values.
        frame = _read_columns(root, LAB_RESULTS, SUMMARY_INPUT_COLUMNS)
        missing = sorted(set(SUMMARY_INPUT_COLUMNS) - set(frame.columns))
        if missing:
            notes.append(f"{LAB_RESULTS} lacks columns {missing}; lab mapping not counted.")
            results = None
        else:
            sites = tuple(
                LabSiteMapping(
                    **{**r, "site": _text(r["site"]), "source_kind": _text(r["source_kind"])}
                )
                for r in site_summary(frame).to_dicts()
            )
    issues: tuple[LabMappingIssue, ...] = ()
    if report is not None:
        frame = _read_columns(root, LAB_MAPPING_REPORT, MAPPING_REPORT_COLUMNS)
        missing = sorted({"site", "issue", "rows"} - set(frame.columns))
        if missing:
            notes.append(f"{LAB_MAPPING_REPORT} lacks columns {missing}; issues not shown.")
            report = None
        else:
            frame = frame.with_columns(
                [
                    pl.lit(None, pl.String).alias(c)
                    for c in MAPPING_REPORT_COLUMNS
                    if c not in frame.columns
                ]
            )
            issues = tuple(
                LabMappingIssue(
                    site=_text(r["site"]),
                    source_kind=_text(r["source_kind"]),
                    map_version=_optional_text(r["map_version"]),
                    issue=_text(r["issue"]),
                    code=_optional_text(r["code"]),
                    code_system=_optional_text(r["code_system"]),
                    code_display=_optional_text(r["code_display"]),
                    unit=_optional_text(r["unit"]),
                    analyte=_optional_text(r["analyte"]),
                    rows=_int(r["rows"]) or 0,
                )
                for r in frame.to_dicts()
            )
            issues = tuple(
                sorted(
                    issues,
                    key=lambda i: (-i.rows, i.site, i.issue, i.code or "", i.unit or ""),
                )
            )
    return LabMapping(
        results_found=results is not None,
        sites=sites,
        report_found=report is not None,
        issues=issues,
    )


def _sdtm_conformance(
    root: Path,
    by_path: dict[str, TableInfo],
    files: tuple[SourceFile, ...],
    notes: list[str],
) -> SdtmConformance | None:
    if _readable(by_path, SDTM_FINDINGS) is None:
        return None
    frame = _read_columns(root, SDTM_FINDINGS, SDTM_FINDINGS_COLUMNS)
    missing = sorted({"source_file", "rule", "severity"} - set(frame.columns))
    if missing:
        notes.append(f"{SDTM_FINDINGS} lacks columns {missing}; SDTM findings not shown.")
        return None
    frame = frame.with_columns(
        [pl.lit(None).alias(c) for c in SDTM_FINDINGS_COLUMNS if c not in frame.columns]
    )
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in frame.to_dicts():
        grouped[(_study(r["source_file"]), _text(r["rule"]))].append(r)
    findings = [
        SdtmRuleFindings(
            study=study,
            rule=rule,
            severity=min(
                (_text(r["severity"]) for r in rows), key=lambda v: (SEVERITY_RANK.get(v, 2), v)
            ),
            datasets=tuple(sorted({str(r["dataset"]) for r in rows if r["dataset"]})),
            variables=tuple(sorted({str(r["variable"]) for r in rows if r["variable"]})),
            findings=len(rows),
            rows=sum(_int(r["rows"]) or 0 for r in rows),
        )
        for (study, rule), rows in grouped.items()
    ]
    findings.sort(key=lambda f: (SEVERITY_RANK.get(f.severity, 2), f.study, -f.rows, f.rule))
    studies = {f.study for f in findings} | {
        _study(f.source_file) for f in files if f.silo == TRIALS_SILO
    }
    return SdtmConformance(studies=tuple(sorted(studies)), findings=tuple(findings))


def _identity_linkage(
    root: Path, by_path: dict[str, TableInfo], notes: list[str]
) -> IdentityLinkage | None:
    crosswalk = _readable(by_path, CROSSWALK)
    quarantine = _readable(by_path, IDENTITY_CONFLICTS)
    if crosswalk is None and quarantine is None:
        return None
    key = ("source_system", "identifier_type")
    linked = pl.DataFrame(
        schema={"source_system": pl.String, "identifier_type": pl.String, "link_rule": pl.String}
    )
    people = None
    if crosswalk is not None:
        frame = _read_columns(root, CROSSWALK, CROSSWALK_COUNTED_COLUMNS)
        missing = sorted(set(key) - set(frame.columns))
        if missing:
            notes.append(f"{CROSSWALK} lacks columns {missing}; identities not counted.")
            crosswalk = None
        else:
            if "link_rule" not in frame.columns:
                frame = frame.with_columns(pl.lit(None, pl.String).alias("link_rule"))
            if "person_key" in frame.columns:
                people = frame.get_column("person_key").drop_nulls().n_unique()
            linked = frame.select(*key, "link_rule")
    conflicts = pl.DataFrame(
        schema={"source_system": pl.String, "identifier_type": pl.String, "reason": pl.String}
    )
    if quarantine is not None:
        frame = _read_columns(root, IDENTITY_CONFLICTS, IDENTITY_CONFLICT_COLUMNS)
        missing = sorted(set(IDENTITY_CONFLICT_COLUMNS) - set(frame.columns))
        if missing:
            notes.append(f"{IDENTITY_CONFLICTS} lacks columns {missing}; conflicts not counted.")
            quarantine = None
        else:
            conflicts = frame.select(IDENTITY_CONFLICT_COLUMNS)
    rules: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    counts = (
        linked.with_columns(pl.col("link_rule").cast(pl.String).fill_null("(none)"))
        .group_by([*key, "link_rule"])
        .len()
        .sort(["len", "link_rule"], descending=[True, False])
    )
    for r in counts.to_dicts():
        rules[(_text(r["source_system"]), _text(r["identifier_type"]))].append(
            (_text(r["link_rule"]), int(r["len"]))
        )
    by_reason = conflicts.group_by([*key, "reason"]).len()
    quarantined: dict[tuple[str, str], int] = defaultdict(int)
    for r in by_reason.to_dicts():
        quarantined[(_text(r["source_system"]), _text(r["identifier_type"]))] += int(r["len"])
    systems = [
        IdentitySystem(
            silo=system.split(":", 1)[0],
            source_system=system,
            identifier_type=kind,
            linked=sum(n for _, n in rules.get((system, kind), [])),
            rules=tuple(rules.get((system, kind), [])),
            conflicts=quarantined.get((system, kind), 0),
        )
        for system, kind in set(rules) | set(quarantined)
    ]
    silo_order = {"ehr": 0, "lab": 1, "imaging": 2, "genomics": 3, "trials": 4}
    systems.sort(
        key=lambda s: (silo_order.get(s.silo, 5), s.silo, s.source_system, s.identifier_type)
    )
    listed = sorted(
        (
            IdentityConflict(
                _text(r["source_system"]),
                _text(r["identifier_type"]),
                _text(r["reason"]),
                int(r["len"]),
            )
            for r in by_reason.to_dicts()
        ),
        key=lambda c: (c.source_system, c.identifier_type, -c.rows, c.reason),
    )
    return IdentityLinkage(
        crosswalk_found=crosswalk is not None,
        conflicts_found=quarantine is not None,
        people=people,
        systems=tuple(systems),
        conflicts=tuple(listed),
    )


def _readable(by_path: dict[str, TableInfo], path: str) -> TableInfo | None:
    """The table at ``path`` when the lake has it and its log could be read."""
    info = by_path.get(path)
    return None if info is None or info.error else info


def _study(source_file: Any) -> str:
    """The study folder of a trials source file (``CDISCPILOT01/ae.xpt`` -> ``CDISCPILOT01``)."""
    parts = PurePosixPath(str(source_file or "")).parts
    return parts[0] if len(parts) > 1 else ""


def _distinct_issues(lab: LabMapping | None, issue: str, field: str) -> int | None:
    if lab is None or not lab.report_found:
        return None
    return len({(i.site, getattr(i, field)) for i in lab.issues if i.issue == issue})


def _findings_of(sdtm: SdtmConformance | None, severity: str) -> int | None:
    if sdtm is None:
        return None
    return sum(f.findings for f in sdtm.findings if f.severity == severity)


# ---------------------------------------------------------------------------------------------
# Lineage


def _lineage(
    root: Path,
    roots: list[str],
    tables: tuple[TableInfo, ...],
    views: tuple[GoldView, ...],
    files: tuple[SourceFile, ...],
    rejects: tuple[RejectCount, ...],
    notes: list[str],
) -> LineageGraph:
    graph = _GraphBuilder(tables, files)
    for t in tables:
        if t.layer in GRAPH_LAYERS:
            graph.table(t.path)

    events: list[dict] = []
    nodes: set[str] = set()
    edges: set[tuple[str, str]] = set()
    if (root / LINEAGE_EVENTS).is_file():
        try:
            events, bad_lines = read_events_with_errors(root)
            nodes, edges = lineage_graph(events)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            notes.append(f"The lineage events could not be read ({type(exc).__name__}).")
            events, bad_lines = [], 0
        if bad_lines:
            notes.append(f"{bad_lines} lines of {LINEAGE_EVENTS} are not JSON events; skipped.")
    collapsed = _collapse_jobs(nodes, edges)
    if collapsed:
        # A dataset outside the lake is a source only if nothing in the lineage writes it;
        # outside datasets that runs write (an agent, a served extract) are not drawn.
        written = {b for _a, b in collapsed}
        for a, b in sorted(collapsed):
            src = graph.dataset(a, roots, written)
            dst = graph.dataset(b, roots, written)
            if src and dst and src != dst:
                graph.edge(src, dst)
        origin = "events"
        note = (
            f"Drawn from {len(events):,} OpenLineage run events ({LINEAGE_EVENTS}); job nodes "
            "are collapsed so each arrow runs from an input dataset to an output dataset."
        )
    else:
        _infer_edges(graph, tables, views, files, rejects)
        origin = "inferred"
        found = "has no completed run" if events else "does not exist"
        note = (
            f"Lineage events: not yet recorded ({LINEAGE_EVENTS} {found}). The graph is "
            "inferred from the catalog manifest's upstream lists, the files ledger and table "
            "names."
        )
    for view in views:
        gold = graph.table(view.path)
        tool = graph.add(
            f"mcp:{view.tool}",
            view.tool,
            f"{view.audience} audience",
            "mcp",
            view.tool,
            f"view-{slug(view.name)}",
        )
        graph.edge(gold, tool)
    return graph.build(origin, len(events), note)


class _GraphBuilder:
    def __init__(self, tables: tuple[TableInfo, ...], files: tuple[SourceFile, ...]) -> None:
        self._tables = {t.path: t for t in tables}
        self._files = files
        self._nodes: dict[str, GraphNode] = {}
        self._edges: set[tuple[str, str]] = set()

    def add(self, id_: str, label: str, detail: str, layer: str, ref: str, anchor: str) -> str:
        self._nodes.setdefault(id_, GraphNode(id_, label, detail, layer, ref, anchor))
        return id_

    def edge(self, a: str, b: str) -> None:
        self._edges.add((a, b))

    def table(self, path: str) -> str:
        info = self._tables.get(path)
        parts = path.split("/")
        middle = "/".join(parts[1:-1])
        if info is None:
            count = "not in the lake"
        elif info.rows is None:
            count = "rows unknown"
        else:
            count = f"{info.rows:,} rows"
        layer = layer_of(path)
        label = parts[-1]
        if layer == "rejects":
            label, count = f"{label} rejects", count.replace("rows", "quarantined")
        elif layer == "bronze" and len(parts) == 3 and label == "files":
            label, count = "files ledger", count.replace("rows", "files")
        detail = f"{middle} · {count}" if middle else count
        return self.add(f"table:{path}", label, detail, layer, path, f"table-{slug(path)}")

    def source(self, silo: str, name: str, ref: str) -> str:
        ledger = next((f for f in self._files if f.silo == silo and f.source_file == name), None)
        detail = silo
        if ledger is not None and ledger.records is not None:
            detail = f"{silo} · {ledger.records:,} records"
        key = f"{silo}/{name}" if silo else name
        return self.add(
            f"source:{key}", PurePosixPath(name).name, detail, "source", ref, f"source-{slug(key)}"
        )

    def dataset(self, node: str, roots: list[str], written: set[str]) -> str | None:
        """The graph id of a lineage dataset node (``namespace:name``).

        None for side channels (quality, catalog) and for datasets outside the lake that a
        run writes.
        """
        _namespace, _, name = node.partition(":")
        name = name or node
        path = _lake_path(name, roots, self._tables)
        if path is not None:
            return self.table(path) if layer_of(path) in GRAPH_LAYERS else None
        if node in written:
            return None
        # Outside the lake: a landing file (or folder). Match it to the ledger when we can.
        for f in self._files:
            if name.endswith(f"/{f.silo}/{f.source_file}"):
                return self.source(f.silo, f.source_file, node)
        parts = PurePosixPath(name).parts
        silo = parts[-2] if len(parts) >= 2 and parts[-2] != "/" else ""
        return self.source(silo, parts[-1] if parts else node, node)

    def build(self, origin: str, events: int, note: str) -> LineageGraph:
        return LineageGraph(
            nodes=tuple(self._nodes[k] for k in sorted(self._nodes)),
            edges=tuple(sorted(self._edges)),
            origin=origin,
            events=events,
            note=note,
        )


def _lake_path(name: str, roots: list[str], tables: dict[str, TableInfo]) -> str | None:
    """The lake-relative path of a dataset name, or None when it lies outside the lake."""
    posix = name.replace("\\", "/").rstrip("/")
    for root in roots:
        prefix = root.rstrip("/") + "/"
        if posix.startswith(prefix):
            return posix[len(prefix) :]
    # A lake that moved since the events were written: match a known table by suffix.
    matches = [p for p in tables if posix.endswith("/" + p)]
    return max(matches, key=len) if matches else None


def _collapse_jobs(nodes: set[str], edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Dataset -> dataset edges, walking through job nodes."""
    successors: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        successors[a].add(b)
    out = set()
    for node in nodes:
        if _is_job(node):
            continue
        seen: set[str] = set()
        frontier = list(successors[node])
        while frontier:
            nxt = frontier.pop()
            if nxt in seen:
                continue
            seen.add(nxt)
            if _is_job(nxt):
                frontier.extend(successors[nxt])
            else:
                out.add((node, nxt))
    return out


def _is_job(node: str) -> bool:
    return node.startswith("job:")


def _infer_edges(
    graph: _GraphBuilder,
    tables: tuple[TableInfo, ...],
    views: tuple[GoldView, ...],
    files: tuple[SourceFile, ...],
    rejects: tuple[RejectCount, ...],
) -> None:
    paths = {t.path for t in tables}
    bronze_by_silo: dict[str, list[str]] = defaultdict(list)
    for p in sorted(paths):
        parts = p.split("/")
        if parts[0] == "bronze" and len(parts) == 3:
            bronze_by_silo[parts[1]].append(p)
    for f in files:
        node = graph.source(f.silo, f.source_file, f"{f.silo}/{f.source_file}")
        graph.edge(node, graph.table(f.ledger))
        stem = _snake(re.split(r"\.", PurePosixPath(f.source_file).name, maxsplit=1)[0])
        for candidate in (stem, f"{stem}s", f"{stem}es", stem.removesuffix("y") + "ies"):
            target = f"bronze/{f.silo}/{candidate}"
            if target in paths and target != f.ledger:
                graph.edge(node, graph.table(target))
                break
        for r in rejects:
            if r.source in (f.source_file, f"{f.silo}/{f.source_file}"):
                graph.edge(node, graph.table(r.table))
    for p in sorted(paths):
        parts = p.split("/")
        if parts[0] == "silver":
            bronze = "/".join(["bronze", *parts[1:]])
            if bronze in paths:
                graph.edge(graph.table(bronze), graph.table(p))
    for view in views:
        for up in view.upstream:
            graph.edge(graph.table(up), graph.table(view.path))


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


# ---------------------------------------------------------------------------------------------
# Small parsers


def slug(text: str) -> str:
    """An HTML id fragment for a path or name."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _utc(value)
    try:
        return _utc(datetime.fromisoformat(str(value)))
    except ValueError:
        return None


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
