"""The report's data: frozen dataclasses of plain values, collected once and rendered once.

Nothing here holds a table row of clinical data: only names, counts, versions, times, file
digests, quality outcome counts, and the lab codes, units and SDTM rules that failed to
conform, with counts.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Layer = Literal[
    "source",
    "bronze",
    "restricted",
    "silver",
    "gold",
    "mcp",
    "rejects",
    "quality",
    "catalog",
    "audit",
    "other",
]
"""Where a node or table sits. ``source`` is a landing file, ``mcp`` a served tool."""


@dataclass(frozen=True)
class TableInfo:
    """One Delta table of the lake, from its transaction log only.

    Attributes:
        path: lake-relative POSIX path, e.g. ``silver/ehr/patients``.
        layer: ``bronze``, ``restricted``, ``silver``, ``gold``, ``rejects``, ``quality``,
            ``catalog``, ``audit`` or ``other`` (from the first path segment).
        rows: sum of ``num_records`` over the add actions; None when the log has no stats.
        files: number of data files in the current version.
        size_bytes: total size of those data files.
        version: current Delta version.
        last_commit_at: time of the latest commit (UTC).
        last_operation: the latest commit's operation (``WRITE``, ``MERGE`` ...).
        last_run_id: the Dagster run id recorded in the latest commit's metadata, if any.
        error: why the table could not be read, else None.
    """

    path: str
    layer: str
    rows: int | None
    files: int
    size_bytes: int
    version: int | None
    last_commit_at: datetime | None
    last_operation: str | None
    last_run_id: str | None
    error: str | None = None


@dataclass(frozen=True)
class FreshnessInfo:
    """A gold view's freshness block from the catalog manifest.

    Attributes:
        status: ``fresh``, ``warn``, ``stale`` or ``unknown``, as the pipeline judged it.
        newest_source_at: when the newest source data behind the view was produced.
        age_seconds: ``generated_at - newest_source_at`` of the report, or None.
        warn_after_seconds: the SLA's warn window.
        fail_after_seconds: the SLA's fail window.
        checked_at: when the pipeline judged the status.
    """

    status: str
    newest_source_at: datetime | None
    age_seconds: float | None
    warn_after_seconds: int | None
    fail_after_seconds: int | None
    checked_at: datetime | None


@dataclass(frozen=True)
class GoldView:
    """A gold view served to agents, from the catalog manifest.

    Attributes:
        name: dataset name; the MCP tool is ``query_<name>``.
        audience: the audience the view is de-identified for.
        path: lake-relative path of the view's Delta table.
        title: human title.
        owner: the accountable owner.
        tool: the MCP tool name (``query_<name>``).
        resource: the MCP data-card resource (``catalog://datasets/<name>``).
        rows: row count the manifest recorded.
        delta_version: Delta version the manifest recorded.
        last_materialized: when the view was last written.
        upstream: lake paths the view is built from.
        columns: number of published columns.
        freshness: the manifest's freshness block, or None when not yet recorded.
    """

    name: str
    audience: str
    path: str
    title: str
    owner: str
    tool: str
    resource: str
    rows: int | None
    delta_version: int | None
    last_materialized: datetime | None
    upstream: tuple[str, ...]
    columns: int
    freshness: FreshnessInfo | None


@dataclass(frozen=True)
class QualityOutcome:
    """One expectation's result: counts only, never values."""

    expectation: str
    column: str | None
    description: str
    severity: str
    success: bool
    element_count: int | None
    unexpected_count: int | None
    unexpected_percent: float | None


@dataclass(frozen=True)
class QualityRun:
    """One validation of one table version by one suite."""

    delta_version: int | None
    evaluated_at: datetime | None
    success: bool
    rows: int | None
    expectations: int
    failed_errors: int
    failed_warnings: int
    dagster_run_id: str | None


@dataclass(frozen=True)
class QualitySuite:
    """A table x suite: its validation history (oldest first) and the latest outcomes.

    Attributes:
        table: lake-relative path of the validated table.
        suite: expectation suite name.
        runs: every recorded validation, oldest first.
        latest_outcomes: the newest run's outcomes, failures first; empty when only the
            manifest's summary is known.
        origin: ``results`` (the ``_quality/results`` table) or ``manifest`` (its summary).
    """

    table: str
    suite: str
    runs: tuple[QualityRun, ...]
    latest_outcomes: tuple[QualityOutcome, ...]
    origin: str = "results"

    @property
    def latest(self) -> QualityRun:
        """The newest run."""
        return self.runs[-1]


@dataclass(frozen=True)
class SourceFile:
    """One ingested landing file, from a ``bronze/<silo>/files`` ledger.

    Attributes:
        ledger: lake path of the ledger table.
        silo: the landing silo (``ehr``).
        source_file: path relative to the silo's landing folder.
        sha256: hex digest of the file's bytes as ingested.
        bytes: size of the file.
        records: records read.
        rejects: records quarantined.
        ingested_at: when biofed read it.
        source_modified_at: the file's modification time, when the ledger records it.
    """

    ledger: str
    silo: str
    source_file: str
    sha256: str
    bytes: int | None
    records: int | None
    rejects: int | None
    ingested_at: datetime | None
    source_modified_at: datetime | None


@dataclass(frozen=True)
class RejectCount:
    """How many records one source lost to quarantine for one reason."""

    table: str
    source: str
    reason: str
    count: int


@dataclass(frozen=True)
class GraphNode:
    """A node of the lineage graph.

    Attributes:
        id: stable id: ``table:<lake path>``, ``source:<silo>/<file>`` or ``mcp:<tool>``.
        label: the short name drawn in the box.
        detail: the second line (row counts, audience).
        layer: the node's layer, which decides its column and colour.
        ref: what the node stands for: the lineage dataset (``namespace:name``), lake path or
            tool name.
        anchor: the ``id`` of the report element the node links to.
    """

    id: str
    label: str
    detail: str
    layer: str
    ref: str
    anchor: str


@dataclass(frozen=True)
class LineageGraph:
    """Dataset-to-dataset lineage (job nodes collapsed) plus the MCP tools over gold.

    Attributes:
        nodes: sorted by id.
        edges: ``(from id, to id)`` pairs, sorted.
        origin: ``events`` (OpenLineage run events) or ``inferred`` (manifest upstream, the
            files ledger and naming conventions).
        events: how many lineage events were read.
        note: a sentence for the reader about where the graph comes from.
    """

    nodes: tuple[GraphNode, ...]
    edges: tuple[tuple[str, str], ...]
    origin: str
    events: int
    note: str


@dataclass(frozen=True)
class LabSiteMapping:
    """How one site's results of one source kind conformed (a row of
    :func:`quality.report.lab_mapping.site_summary`): counts only.

    Attributes:
        site: the lab's site code (``SITE-A01``).
        source_kind: the reader that produced the rows (``csv``, ``hl7v2``).
        results: results in silver.
        map_version: the site map versions consulted, joined by ``", "``; None when none was.
        loinc_reported: results whose lab sent a valid LOINC.
        mapped: results the site map gave a LOINC.
        unmapped: results with a local code the map lacks.
        invalid_loinc: results whose LOINC (sent or mapped) is malformed.
        canonical: values sent in the analyte's canonical unit.
        converted: values converted to it.
        no_canonical: values of an analyte without a canonical unit.
        unknown_unit: values whose unit is not recognisable as UCUM.
        unconvertible: values whose unit cannot be converted to the canonical one.
        not_numeric: results without a number.
        no_unit: numbers sent without a unit.
    """

    site: str
    source_kind: str
    results: int
    map_version: str | None
    loinc_reported: int
    mapped: int
    unmapped: int
    invalid_loinc: int
    canonical: int
    converted: int
    no_canonical: int
    unknown_unit: int
    unconvertible: int
    not_numeric: int
    no_unit: int


@dataclass(frozen=True)
class LabMappingIssue:
    """One row of ``silver/lab/mapping_report``: a code or unit a site sends that biofed could
    not conform, with how many results it concerns. Codes and units only, never a value.

    Attributes:
        site: the lab's site code.
        source_kind: ``csv`` or ``hl7v2``.
        map_version: the site map version consulted, if any.
        issue: ``unmapped_code``, ``invalid_loinc``, ``unknown_unit`` or
            ``unconvertible_unit``.
        code: the local code or LOINC concerned.
        code_system: its coding system as sent.
        code_display: its display name as sent.
        unit: the unit as sent.
        analyte: the analyte, when the code was mapped.
        rows: results concerned.
    """

    site: str
    source_kind: str
    map_version: str | None
    issue: str
    code: str | None
    code_system: str | None
    code_display: str | None
    unit: str | None
    analyte: str | None
    rows: int


@dataclass(frozen=True)
class LabMapping:
    """The lab silo's terminology conformance, per site.

    Attributes:
        results_found: whether ``silver/lab/lab_results`` is in the lake (and readable).
        sites: one row per site and source kind, sorted by both.
        report_found: whether ``silver/lab/mapping_report`` is in the lake (and readable).
        issues: the mapping report, by rows concerned (most first), then site, issue, code.
    """

    results_found: bool
    sites: tuple[LabSiteMapping, ...]
    report_found: bool
    issues: tuple[LabMappingIssue, ...]


@dataclass(frozen=True)
class SdtmRuleFindings:
    """One conformance rule's findings in one study folder of the trials landing.

    Attributes:
        study: the study folder (first part of ``source_file``); ``""`` for a file directly
            in ``landing/trials``.
        rule: the rule id (``required_variable_missing`` ...).
        severity: ``error`` or ``warning`` (the most severe when findings disagree).
        datasets: the datasets with a finding, sorted.
        variables: the variables named by the findings, sorted.
        findings: findings (rows of ``bronze/trials/findings``).
        rows: dataset records concerned, summed over the findings.
    """

    study: str
    rule: str
    severity: str
    datasets: tuple[str, ...]
    variables: tuple[str, ...]
    findings: int
    rows: int


@dataclass(frozen=True)
class SdtmConformance:
    """The trials silo's SDTM conformance findings (``bronze/trials/findings``).

    Attributes:
        studies: every study folder with a finding or a file in the trials ledger, sorted.
        findings: per study and rule, errors first, then by study, rows concerned and rule.
    """

    studies: tuple[str, ...]
    findings: tuple[SdtmRuleFindings, ...]


@dataclass(frozen=True)
class IdentitySystem:
    """The identifiers of one source system in the person crosswalk, and its conflicts.

    Attributes:
        silo: the silo (``ehr``, ``lab``, ``imaging``, ``genomics``, ``trials``).
        source_system: ``ehr``, ``lab:<SITE>``, ``imaging``, ``genomics`` or
            ``trials:<STUDYID>``.
        identifier_type: ``fhir_patient_id``, ``mrn``, ``lab_patient_id``, ...
        linked: identifiers linked to a person.
        rules: ``(link_rule, identifiers)`` pairs, most first.
        conflicts: source rows of this system and type quarantined instead of linked.
    """

    silo: str
    source_system: str
    identifier_type: str
    linked: int
    rules: tuple[tuple[str, int], ...]
    conflicts: int


@dataclass(frozen=True)
class IdentityConflict:
    """How many source rows of one system and identifier type were quarantined for one
    reason (never which identifiers)."""

    source_system: str
    identifier_type: str
    reason: str
    rows: int


@dataclass(frozen=True)
class IdentityLinkage:
    """The person crosswalk and its quarantine, counted.

    Attributes:
        crosswalk_found: whether ``restricted/person_crosswalk`` is in the lake (readable).
        conflicts_found: whether ``_rejects/identity/crosswalk`` is.
        people: distinct people in the crosswalk; None when it was not read.
        systems: per source system and identifier type, by silo then system.
        conflicts: per system, type and reason, by system, type, then most rows.
    """

    crosswalk_found: bool
    conflicts_found: bool
    people: int | None
    systems: tuple[IdentitySystem, ...]
    conflicts: tuple[IdentityConflict, ...]


@dataclass(frozen=True)
class Summary:
    """The header strip's numbers.

    Attributes:
        tables: Delta tables in the lake.
        rows: rows over all tables (a table without stats counts 0).
        gold_views: views in the catalog manifest (each one MCP tool).
        quality_passed: table x suite pairs whose latest validation passed; None when no
            quality result is recorded.
        quality_failed: ... whose latest validation failed; None likewise.
        stale_views: gold views whose freshness status is ``stale``.
        warn_views: gold views whose freshness status is ``warn``.
        rejected_records: rows over all ``_rejects`` tables.
        unmapped_lab_codes: distinct (site, local code) pairs the site maps lack, from
            ``silver/lab/mapping_report``; None when that table is not in the lake.
        unknown_lab_units: distinct (site, unit) pairs not recognisable as UCUM, likewise.
        sdtm_errors: SDTM conformance findings of severity ``error`` in
            ``bronze/trials/findings``; None when that table is not in the lake.
        sdtm_warnings: ... of severity ``warning``; None likewise.
    """

    tables: int
    rows: int
    gold_views: int
    quality_passed: int | None
    quality_failed: int | None
    stale_views: int
    warn_views: int
    rejected_records: int
    unmapped_lab_codes: int | None = None
    unknown_lab_units: int | None = None
    sdtm_errors: int | None = None
    sdtm_warnings: int | None = None


@dataclass(frozen=True)
class AccessEvent:
    """One notable access: a high-risk call, a security alert or a break-glass release.

    Attributes:
        time: when it was recorded (UTC).
        kind: ``request``, ``security_alert`` or ``break_glass_review``.
        principal: who called (the token subject or the stdio identity).
        role: the caller's role.
        action: the tool or protocol method.
        dataset: ``<audience>/<name>``, when one was named.
        decision: ``allow``, ``deny`` or ``error``.
        reason: the reason code.
        risk_score: 0-100.
    """

    time: datetime
    kind: str
    principal: str | None
    role: str | None
    action: str
    dataset: str | None
    decision: str
    reason: str
    risk_score: int


@dataclass(frozen=True)
class AccessSummary:
    """Who used the catalog server, from its audit log (no arguments, no values).

    Attributes:
        records: audit records read.
        verified: whether the hash chain verified; None when it could not be checked.
        problem: what is wrong with the chain, when it did not verify.
        first_at: the oldest record's time.
        last_at: the newest record's time.
        decisions: record count per decision (``allow``, ``deny``, ``error``).
        by_principal: ``(principal, role, purpose, calls, denied, rows)`` per caller, busiest
            first.
        by_dataset: ``(dataset, calls, rows)`` per dataset, busiest first.
        refusals: ``(reason, count)`` of denied records, most frequent first.
        alerts: high-risk calls and security alerts, newest first (at most 50).
        break_glass: break-glass review items, newest first (at most 50).
    """

    records: int
    verified: bool | None
    problem: str | None
    first_at: datetime | None
    last_at: datetime | None
    decisions: tuple[tuple[str, int], ...]
    by_principal: tuple[tuple[str, str, str, int, int, int], ...]
    by_dataset: tuple[tuple[str, int, int], ...]
    refusals: tuple[tuple[str, int], ...]
    alerts: tuple[AccessEvent, ...]
    break_glass: tuple[AccessEvent, ...]


@dataclass(frozen=True)
class ReportData:
    """Everything the compliance report shows, collected from one lake.

    Attributes:
        lake_root: absolute path of the lake.
        generated_at: the report's reference time (UTC); ages are measured from it.
        summary: the header numbers.
        tables: every Delta table, sorted by path.
        manifest_found: whether ``_catalog/manifest.json`` exists.
        manifest_generated_at: the manifest's ``generated_at``.
        gold_views: views of the manifest, sorted by path.
        quality_recorded: whether ``_quality/results`` exists.
        quality: table x suite histories, sorted by table then suite.
        source_files: ledger rows, sorted by ledger then file.
        rejects: reject counts, sorted by table, source, reason.
        lineage: the lineage graph.
        data_docs_index: absolute path of the Great Expectations Data Docs index, or None.
        notes: sentences about anything the collector could not read.
        access: who used the catalog server, from its audit log; None when not collected.
        lab_mapping: the lab silo's terminology conformance; None when the lake has neither
            ``silver/lab/lab_results`` nor ``silver/lab/mapping_report``.
        sdtm: the trials silo's SDTM findings; None when ``bronze/trials/findings`` is not
            in the lake.
        identity: the person crosswalk's identifiers and conflicts, counted; None when the
            lake has neither ``restricted/person_crosswalk`` nor ``_rejects/identity/crosswalk``.
    """

    lake_root: str
    generated_at: datetime
    summary: Summary
    tables: tuple[TableInfo, ...]
    manifest_found: bool
    manifest_generated_at: datetime | None
    gold_views: tuple[GoldView, ...]
    quality_recorded: bool
    quality: tuple[QualitySuite, ...]
    source_files: tuple[SourceFile, ...]
    rejects: tuple[RejectCount, ...]
    lineage: LineageGraph
    data_docs_index: str | None
    notes: tuple[str, ...]
    access: AccessSummary | None = None
    lab_mapping: LabMapping | None = None
    sdtm: SdtmConformance | None = None
    identity: IdentityLinkage | None = None
