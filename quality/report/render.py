"""Render :class:`ReportData` as one static, offline HTML page (inline CSS and SVG, no script)."""

import shutil
from collections import Counter
from datetime import datetime
from html import escape
from pathlib import Path

from quality.report.collect import (
    CROSSWALK,
    IDENTITY_CONFLICTS,
    LAB_MAPPING_REPORT,
    LAB_RESULTS,
    QUALITY_RESULTS,
    SDTM_FINDINGS,
    SEVERITY_RANK,
    slug,
)
from quality.report.model import (
    AccessEvent,
    GoldView,
    IdentityLinkage,
    LabMappingIssue,
    LabSiteMapping,
    QualitySuite,
    ReportData,
    SdtmRuleFindings,
    TableInfo,
)
from quality.report.style import CSS
from quality.report.svg import LAYER_COLOURS, LAYER_NAMES, lineage_svg, runs_svg

DATA_DOCS_DIR = "data_docs"
NOT_RECORDED = "not yet recorded"
FRESHNESS_TONES = {"fresh": "ok", "warn": "warn", "stale": "bad", "unknown": "none"}
LAYER_ORDER = (
    "bronze",
    "rejects",
    "restricted",
    "silver",
    "gold",
    "quality",
    "catalog",
    "audit",
    "lineage",
    "other",
)
LAYER_BLURBS = {
    "bronze": "as read from the landing files, with provenance",
    "rejects": "quarantined records: file, locator and reason only",
    "restricted": "identity crosswalk, never exposed to any audience",
    "silver": "typed, one row per real-world thing, linked to person_key",
    "gold": "de-identified views served to agents",
    "quality": "validation history",
    "catalog": "catalog tables",
    "audit": "access audit",
    "lineage": "lineage tables",
    "other": "outside the known layers",
}
SEVERITY_TONES = {"error": "bad", "critical": "bad", "warning": "warn"}
ISSUE_TONES = {
    "unmapped_code": "warn",
    "unknown_unit": "warn",
    "invalid_loinc": "bad",
    "unconvertible_unit": "bad",
}
TABLE_LAYER_COLOURS = {
    **LAYER_COLOURS,
    "quality": ("#0f766e", "#f0fdfa"),
    "catalog": ("#1d4ed8", "#eff6ff"),
    "audit": ("#334155", "#f8fafc"),
    "lineage": ("#334155", "#f8fafc"),
    "other": ("#334155", "#f8fafc"),
}


def render_report(data: ReportData, out_dir: str | Path) -> Path:
    """Write the report to ``out_dir``: ``index.html`` and a copy of the Data Docs.

    The page links the Data Docs through a relative ``data_docs/`` folder copied beside it, so
    the folder can be moved or zipped as a whole.

    Args:
        data: what :func:`quality.report.collect_report_data` collected.
        out_dir: the folder to write; created when missing. An existing ``index.html`` and
            ``data_docs/`` are replaced.

    Returns:
        The path of ``index.html``.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    docs_link = None
    if data.data_docs_index is not None:
        index = Path(data.data_docs_index)
        target = out / DATA_DOCS_DIR
        if target.exists():
            shutil.rmtree(target)
        # Never copy the report into itself when it is written inside the Data Docs folder.
        shutil.copytree(
            index.parent,
            target,
            ignore=lambda folder, names: [n for n in names if (Path(folder) / n) == out],
        )
        docs_link = f"{DATA_DOCS_DIR}/{index.name}"
    page = out / "index.html"
    page.write_text(report_html(data, docs_link=docs_link), encoding="utf-8")
    return page


def report_html(data: ReportData, *, docs_link: str | None) -> str:
    """The report page as a string (see :func:`render_report`)."""
    svg, hover_css = lineage_svg(data.lineage)
    lake_name = Path(data.lake_root).name
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>biofed compliance report · {escape(lake_name)}</title>",
        f"<style>{CSS}\n{hover_css}</style>",
        "</head><body>",
        _masthead(data),
        _strip(data),
        _toc(),
        '<main class="wrap">',
        _notes(data),
        _lineage_section(data, svg),
        _quality_section(data, docs_link),
        _freshness_section(data),
        _ingestion_section(data),
        _lab_mapping_section(data),
        _sdtm_section(data),
        _identity_section(data),
        _tables_section(data),
        _access_section(data),
        "</main>",
        '<footer class="wrap">This report reads counts, names, schemas, versions and timestamps '
        "from the lake's Delta logs, its catalog manifest, the files ledger, the quarantine, "
        "the quality history, the lab mapping report, the SDTM findings and the audit log, "
        "and counts lab results by site and status. It contains no patient data. Generated "
        "by <code>biofed report</code>.</footer>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


# ---------------------------------------------------------------------------------------------
# Header


def _masthead(data: ReportData) -> str:
    manifest = (
        _time(data.manifest_generated_at) if data.manifest_found else "no catalog manifest yet"
    )
    return (
        '<header class="masthead"><div class="wrap">'
        '<div class="brand">biofed · compliance report</div>'
        "<h1>Lineage, quality and freshness of the lake</h1>"
        '<dl class="meta">'
        f"<div><dt>Lake</dt><dd><code>{escape(data.lake_root)}</code></dd></div>"
        f"<div><dt>Generated</dt><dd>{_time(data.generated_at)}</dd></div>"
        f"<div><dt>Catalog manifest</dt><dd>{manifest}</dd></div>"
        "</dl></div></header>"
    )


def _stat(key: str, value: str, sub: str, tone: str) -> str:
    return (
        f'<div class="stat {tone}"><div class="k">{key}</div><div class="v">{value}</div>'
        f'<div class="s">{sub}</div></div>'
    )


def _strip(data: ReportData) -> str:
    s = data.summary
    layers = Counter(t.layer for t in data.tables)
    layer_text = " · ".join(f"{layers[k]} {k}" for k in ("bronze", "silver", "gold") if layers[k])
    if s.quality_passed is None or s.quality_failed is None:
        quality = _stat("Quality", NOT_RECORDED, "no validation results", "none")
    else:
        quality = _stat(
            "Quality",
            f"{s.quality_passed} <small>pass</small> · "
            f'<span class="{"bad" if s.quality_failed else ""}">{s.quality_failed}</span> '
            "<small>fail</small>",
            "latest run per suite",
            "bad" if s.quality_failed else "ok",
        )
    recorded = [v for v in data.gold_views if v.freshness is not None]
    if not recorded:
        stale = _stat("Stale views", NOT_RECORDED, "no freshness checks", "none")
    else:
        unknown = sum(v.freshness.status == "unknown" for v in recorded)  # type: ignore[union-attr]
        stale = _stat(
            "Stale views",
            f'<span class="{"bad" if s.stale_views else ""}">{s.stale_views}</span> '
            f"<small>of {len(data.gold_views)}</small>",
            f"{s.warn_views} warn · {unknown} unknown",
            "bad" if s.stale_views else ("warn" if s.warn_views else "ok"),
        )
    sources = len({(r.table, r.source) for r in data.rejects})
    if s.unmapped_lab_codes is None or s.unknown_lab_units is None:
        lab = _stat("Unmapped lab codes", NOT_RECORDED, "no lab mapping report", "none")
    else:
        sites = len({i.site for i in data.lab_mapping.issues}) if data.lab_mapping else 0
        lab = _stat(
            "Unmapped lab codes",
            f"{s.unmapped_lab_codes:,}",
            f"{_plural(s.unknown_lab_units, 'unknown unit')} · "
            f"{_plural(sites, 'site')} with issues",
            "warn" if s.unmapped_lab_codes or s.unknown_lab_units else "ok",
        )
    if s.sdtm_errors is None or s.sdtm_warnings is None:
        sdtm = _stat("SDTM findings", NOT_RECORDED, "no trials findings", "none")
    else:
        studies = len(data.sdtm.studies) if data.sdtm else 0
        sdtm = _stat(
            "SDTM findings",
            f'<span class="{"bad" if s.sdtm_errors else ""}">{s.sdtm_errors:,}</span> '
            f"<small>error{'s' if s.sdtm_errors != 1 else ''}</small>",
            f"{_plural(s.sdtm_warnings, 'warning')} · {_plural(studies, 'study', 'studies')}",
            "bad" if s.sdtm_errors else ("warn" if s.sdtm_warnings else "ok"),
        )
    return (
        '<section class="strip wrap">'
        + _stat("Tables", f"{s.tables:,}", layer_text or "Delta tables", "info")
        + _stat("Rows", _compact(s.rows), f"{s.rows:,} across all tables", "info")
        + _stat("Gold views", f"{s.gold_views:,}", f"served as {s.gold_views} MCP tools", "info")
        + quality
        + stale
        + _stat(
            "Rejected records",
            f"{s.rejected_records:,}",
            f"from {sources} source{'s' if sources != 1 else ''}"
            if sources
            else "none quarantined",
            "warn" if s.rejected_records else "ok",
        )
        + lab
        + sdtm
        + "</section>"
    )


def _toc() -> str:
    links = [
        ("lineage", "Lineage"),
        ("quality", "Quality"),
        ("freshness", "Freshness"),
        ("ingestion", "Ingestion & rejects"),
        ("lab-mapping", "Lab mapping"),
        ("sdtm", "SDTM"),
        ("identity", "Identity"),
        ("tables", "Tables"),
        ("access", "Access"),
    ]
    items = "".join(
        f'<a href="#{anchor}"><span>{i}</span>{name}</a>'
        for i, (anchor, name) in enumerate(links, 1)
    )
    return f'<nav class="toc"><div class="wrap">{items}</div></nav>'


def _notes(data: ReportData) -> str:
    if not data.notes:
        return ""
    items = "".join(f"<li>{escape(n)}</li>" for n in data.notes)
    return f'<div class="note warn"><strong>Read with care:</strong><ul>{items}</ul></div>'


def _heading(number: int, anchor: str, title: str, lead: str) -> str:
    return (
        f'<section id="{anchor}"><h2><span class="n">{number}</span>{title}</h2>'
        f'<p class="lead">{lead}</p>'
    )


# ---------------------------------------------------------------------------------------------
# Sections


def _lineage_section(data: ReportData, svg: str) -> str:
    graph = data.lineage
    legend = "".join(
        f'<span><i style="background:{tint};border-color:{accent};'
        f'box-shadow:inset 3px 0 {accent}"></i>'
        f"{escape(LAYER_NAMES[layer])}</span>"
        for layer, (accent, tint) in LAYER_COLOURS.items()
        if any(n.layer == layer for n in graph.nodes)
    )
    if 'class="junction"' in svg:
        legend += (
            '<span><i class="dot"></i>one run reading every input on its left and writing '
            "every output on its right</span>"
        )
    body = (
        f'<div class="card graph">{svg}</div>'
        if svg
        else '<div class="card empty">The lake has no tables to draw yet.</div>'
    )
    tone = "" if graph.origin == "events" else " warn"
    return (
        _heading(
            1,
            "lineage",
            "Lineage",
            "Where every served view comes from: landing files on the left, through bronze, "
            "the restricted identity crosswalk and silver, to the de-identified gold views and "
            "the MCP tools that serve them to agents. Hover a box to trace its lineage; click "
            "it to jump to its details.",
        )
        + body
        + f'<div class="legend">{legend}</div>'
        + f'<p class="note{tone}">{escape(graph.note)} {len(graph.nodes)} nodes, '
        f"{len(graph.edges)} edges.</p></section>"
    )


def _quality_section(data: ReportData, docs_link: str | None) -> str:
    lead = (
        "The latest validation of each table by its expectation suite, with its history "
        "(one square per validated Delta version, newest on the right). Outcomes hold counts "
        "only, never values."
    )
    docs = (
        f'<a class="pill-link" href="{escape(docs_link)}">Open the Great Expectations '
        "Data Docs →</a>"
        if docs_link
        else '<p class="muted">Great Expectations Data Docs: not provided with this report.</p>'
    )
    if not data.quality:
        reason = (
            f"No validation results in <code>{QUALITY_RESULTS}</code>."
            if data.quality_recorded
            else f"<code>{QUALITY_RESULTS}</code> does not exist."
        )
        return (
            _heading(2, "quality", "Quality", lead)
            + docs
            + f'<div class="card empty">Quality results: {NOT_RECORDED}. {reason}</div>'
            "</section>"
        )
    paths = {t.path for t in data.tables}
    # Failures first: they are what the reader came for.
    ordered = sorted(data.quality, key=lambda q: (q.latest.success, q.table, q.suite))
    rows = "".join(_suite_row(q, q.table in paths) for q in ordered)
    covered = {q.table for q in data.quality}
    unchecked = [
        t.path
        for t in _by_layer(data.tables)
        if t.path not in covered and t.layer in {"bronze", "restricted", "silver", "gold"}
    ]
    uncovered = (
        '<p class="note">Tables without a recorded quality suite: '
        + ", ".join(_table_link(p) for p in unchecked)
        + ".</p>"
        if unchecked
        else ""
    )
    head = (
        '<div class="srow head"><span>Table and suite</span><span>Latest</span>'
        '<span class="num">Errors</span><span class="num">Warnings</span>'
        '<span class="num">Expectations</span><span class="num">Rows</span>'
        '<span class="num">Version</span><span>Evaluated</span><span>History</span></div>'
    )
    return (
        _heading(2, "quality", "Quality", lead)
        + docs
        + f'<div class="card suites">{head}{rows}</div>'
        + '<p class="muted hint">Click a row to see its expectations; failed suites are open.</p>'
        + uncovered
        + "</section>"
    )


def _suite_row(suite: QualitySuite, in_lake: bool) -> str:
    run = suite.latest
    if not run.success:
        verdict = _badge("fail", "bad")
    elif run.failed_warnings:
        verdict = _badge("pass · warnings", "warn")
    else:
        verdict = _badge("pass", "ok")
    origin = "" if suite.origin == "results" else " · from the manifest"
    runs = f"{len(suite.runs)} run{'s' if len(suite.runs) != 1 else ''}"
    cells = (
        f"<span>{_table_link(suite.table) if in_lake else _code(suite.table)}"
        f'<span class="sub">{escape(suite.suite)}{origin}</span></span>'
        f"<span>{verdict}</span>"
        f'<span class="num">{_count(run.failed_errors, "bad")}</span>'
        f'<span class="num">{_count(run.failed_warnings, "warn")}</span>'
        f'<span class="num">{run.expectations:,}</span><span class="num">{_int(run.rows)}</span>'
        f'<span class="num">{_version(run.delta_version)}</span>'
        f'<span class="when">{_time(run.evaluated_at)}</span>'
        f'<span class="history">{runs_svg(suite.runs)}<span class="sub">{runs}</span></span>'
    )
    anchor = f"quality-{slug(suite.table)}-{slug(suite.suite)}"
    if not suite.latest_outcomes:
        return f'<div class="srow plain" id="{anchor}">{cells}</div>'
    items = "".join(
        "<tr>"
        f"<td>{_badge('pass', 'ok') if o.success else _badge('fail', 'bad')}</td>"
        f"<td>{escape(o.description)}<span class='sub'>{_code(o.expectation)}</span></td>"
        f"<td>{_code(o.column) if o.column else '<span class=muted>table</span>'}</td>"
        f"<td>{escape(o.severity)}</td>"
        f'<td class="num">{_int(o.unexpected_count)}</td>'
        f'<td class="num">{_percent(o.unexpected_percent)}</td>'
        f'<td class="num">{_int(o.element_count)}</td>'
        "</tr>"
        for o in suite.latest_outcomes
    )
    failed = sum(not o.success for o in suite.latest_outcomes)
    return (
        f'<details class="suite" id="{anchor}"{"" if run.success else " open"}>'
        f'<summary class="srow">{cells}</summary>'
        f'<div class="outcomes"><table><caption>Latest outcomes: '
        f"{len(suite.latest_outcomes)} expectations, {failed} failed</caption>"
        "<thead><tr><th>Result</th><th>Expectation</th><th>Column</th><th>Severity</th>"
        '<th class="num">Unexpected</th><th class="num">Unexpected %</th>'
        '<th class="num">Checked</th></tr></thead>'
        f"<tbody>{items}</tbody></table></div></details>"
    )


def _freshness_section(data: ReportData) -> str:
    lead = (
        "Gold views against their freshness SLA, measured from when the newest source data "
        "was produced (not from when the pipeline last ran). Other tables show when they "
        "were last materialised."
    )
    if data.gold_views:
        views = "".join(_view_row(v) for v in data.gold_views)
        gold = (
            '<div class="card"><table><thead><tr><th>Gold view</th><th>Status</th>'
            '<th>Newest source data</th><th class="num">Age</th><th class="num">Warn after</th>'
            '<th class="num">Fail after</th><th class="num">Rows</th>'
            "<th>Served as</th></tr></thead><tbody>" + views + "</tbody></table></div>"
        )
    else:
        gold = (
            '<div class="card empty">No gold views in the catalog manifest'
            f"{'' if data.manifest_found else ' (no manifest yet)'}.</div>"
        )
    gold_paths = {v.path for v in data.gold_views}
    others = [t for t in _by_layer(data.tables) if t.path not in gold_paths]
    other_rows = "".join(
        f'<tr><td><a href="#table-{slug(t.path)}"><code>{escape(t.path)}</code></a></td>'
        f"<td>{_layer(t.layer)}</td>"
        f'<td class="when">{_time(t.last_commit_at)}</td>'
        f'<td class="num">{_age(t.last_commit_at, data.generated_at)}</td></tr>'
        for t in others
    )
    other = (
        "<h3>Other tables: last materialised</h3>"
        '<div class="card"><table><thead><tr><th>Table</th><th>Layer</th>'
        '<th>Last materialised</th><th class="num">Age</th></tr></thead><tbody>'
        + other_rows
        + "</tbody></table></div>"
        if others
        else ""
    )
    return _heading(3, "freshness", "Freshness against SLA", lead) + gold + other + "</section>"


def _view_row(view: GoldView) -> str:
    f = view.freshness
    if f is None:
        status = _badge("not recorded", "none")
        cells = '<td class="muted" colspan="4">freshness not yet recorded in the manifest</td>'
    else:
        status = (
            _badge(f.status, FRESHNESS_TONES.get(f.status, "none"))
            + f'<span class="sub">checked {_time(f.checked_at)}</span>'
        )
        cells = (
            f'<td class="when">{_time(f.newest_source_at)}</td>'
            f'<td class="num">{_duration(f.age_seconds)}</td>'
            f'<td class="num">{_duration(f.warn_after_seconds)}</td>'
            f'<td class="num">{_duration(f.fail_after_seconds)}</td>'
        )
    return (
        f'<tr id="view-{slug(view.name)}"><td><a class="title" href="#table-{slug(view.path)}">'
        f"{escape(view.title)}</a>"
        f'<span class="sub"><code>{escape(view.path)}</code></span>'
        f'</td><td class="status">{status}</td>{cells}'
        f'<td class="num">{_int(view.rows)}</td>'
        f"<td><code>{escape(view.tool)}</code>"
        f'<span class="sub"><code>{escape(view.resource)}</code></span></td></tr>'
    )


def _ingestion_section(data: ReportData) -> str:
    lead = (
        "Every landing file biofed ingested, identified by its SHA-256, with the records it "
        "gave and those quarantined; then the quarantine counted by reason. Quarantined "
        "records keep their file, locator and reason only."
    )
    if data.source_files:
        has_modified = any(f.source_modified_at for f in data.source_files)
        modified_head = "<th>Source modified</th>" if has_modified else ""
        rows = "".join(
            f'<tr id="source-{slug(f.silo + "/" + f.source_file)}">'
            f"<td><code>{escape(f.silo)}/{escape(f.source_file)}</code></td>"
            f'<td><code title="{escape(f.sha256)}">{escape(f.sha256[:12])}…</code></td>'
            f'<td class="num">{_bytes(f.bytes)}</td><td class="num">{_int(f.records)}</td>'
            f'<td class="num">{_rejects(f.rejects)}</td>'
            + (f'<td class="when">{_time(f.source_modified_at)}</td>' if has_modified else "")
            + f'<td class="when">{_time(f.ingested_at)}</td></tr>'
            for f in data.source_files
        )
        files = (
            '<div class="card"><table><thead><tr><th>Source file</th><th>SHA-256</th>'
            '<th class="num">Size</th><th class="num">Records</th><th class="num">Rejects</th>'
            f"{modified_head}<th>Ingested</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    else:
        files = f'<div class="card empty">Files ledger: {NOT_RECORDED}.</div>'

    reject_tables = [t for t in data.tables if t.layer == "rejects"]
    if data.rejects:
        by_reason = Counter()
        for r in data.rejects:
            by_reason[r.reason] += r.count
        top = max(by_reason.values())
        reasons = "".join(
            f"<tr><td>{escape(reason)}</td><td class='num'>"
            f'<span class="bar" style="width:{max(4, round(60 * count / top))}px"></span>'
            f"{count:,}</td></tr>"
            for reason, count in sorted(by_reason.items(), key=lambda rc: (-rc[1], rc[0]))
        )
        detail = "".join(
            f"<tr><td><code>{escape(r.source)}</code><span class='sub'>{escape(r.table)}</span>"
            f"</td><td>{escape(r.reason)}</td><td class='num'>{r.count:,}</td></tr>"
            for r in data.rejects
        )
        rejects = (
            '<div class="grid2"><div><h3>Rejects by source and reason</h3><div class="card">'
            "<table><thead><tr><th>Source</th><th>Reason</th><th class='num'>Records</th></tr>"
            f"</thead><tbody>{detail}</tbody></table></div></div>"
            '<div><h3>Rejects by reason</h3><div class="card"><table><thead><tr><th>Reason</th>'
            f"<th class='num'>Records</th></tr></thead><tbody>{reasons}</tbody></table></div>"
            "</div></div>"
        )
    elif reject_tables:
        rejects = (
            '<h3>Rejects</h3><div class="card empty">No record was quarantined '
            f"({', '.join(escape(t.path) for t in reject_tables)} is empty).</div>"
        )
    else:
        rejects = f'<h3>Rejects</h3><div class="card empty">Quarantine: {NOT_RECORDED}.</div>'
    return (
        _heading(4, "ingestion", "Ingestion and rejects", lead)
        + "<h3>Source files</h3>"
        + files
        + rejects
        + "</section>"
    )


def _lab_mapping_section(data: ReportData) -> str:
    lead = (
        "How each lab's results conformed to LOINC and UCUM, per site: results that came with "
        "a LOINC code, those the site's code map translated (and the map's version), those it "
        "could not, and how their units were recognised and converted to the analyte's "
        "canonical unit. Then, per site, the local codes and unit strings that did not "
        "conform, with the results they concern. Counts, codes and units only, never a value."
    )
    heading = _heading(5, "lab-mapping", "Lab terminology mapping", lead)
    lab = data.lab_mapping
    if lab is None:
        return (
            heading
            + f'<div class="card empty">Lab terminology mapping: {NOT_RECORDED}. This lake has '
            f"no lab silo (neither <code>{LAB_RESULTS}</code> nor "
            f"<code>{LAB_MAPPING_REPORT}</code> is in it).</div></section>"
        )
    paths = {t.path for t in data.tables}
    if not lab.results_found:
        sites = f'<div class="card empty">{_unavailable(LAB_RESULTS, paths)}</div>'
    elif not lab.sites:
        sites = f'<div class="card empty">{_table_link(LAB_RESULTS)} has no results yet.</div>'
    else:
        sites = (
            '<div class="card"><table><thead>'
            '<tr><th colspan="3"></th><th colspan="5">LOINC code</th>'
            '<th colspan="5">Unit</th></tr>'
            '<tr><th>Site</th><th>Source</th><th class="num">Results</th>'
            '<th class="num">As reported</th><th class="num">Mapped</th><th>Map version</th>'
            '<th class="num">Unmapped</th><th class="num">Invalid</th>'
            '<th class="num">Canonical</th><th class="num">Converted</th>'
            '<th class="num">Unknown</th><th class="num">Unconvertible</th>'
            '<th class="num">Other</th></tr></thead><tbody>'
            + "".join(_lab_site_row(m) for m in lab.sites)
            + "</tbody></table></div>"
        )
    return (
        heading
        + "<h3>Results by site</h3>"
        + sites
        + _lab_issues(lab.issues, lab.report_found, paths)
        + "</section>"
    )


def _lab_site_row(m: LabSiteMapping) -> str:
    other = m.no_canonical + m.not_numeric + m.no_unit
    other_title = (
        f"no canonical unit {m.no_canonical:,} · not numeric {m.not_numeric:,} · "
        f"no unit {m.no_unit:,}"
    )
    version = _code(m.map_version) if m.map_version else '<span class="muted">—</span>'
    return (
        f'<tr><td class="nowrap">{_code(m.site)}</td><td>{escape(m.source_kind)}</td>'
        f'<td class="num">{m.results:,}</td>'
        f'<td class="num">{m.loinc_reported:,}</td><td class="num">{m.mapped:,}</td>'
        f"<td>{version}</td>"
        f'<td class="num">{_count(m.unmapped, "warn")}</td>'
        f'<td class="num">{_count(m.invalid_loinc, "bad")}</td>'
        f'<td class="num">{m.canonical:,}</td><td class="num">{m.converted:,}</td>'
        f'<td class="num">{_count(m.unknown_unit, "warn")}</td>'
        f'<td class="num">{_count(m.unconvertible, "bad")}</td>'
        f'<td class="num" title="{other_title}">{other:,}</td></tr>'
    )


def _lab_issues(issues: tuple[LabMappingIssue, ...], found: bool, paths: set[str]) -> str:
    title = "<h3>Codes and units that did not conform</h3>"
    if not found:
        return f'{title}<div class="card empty">{_unavailable(LAB_MAPPING_REPORT, paths)}</div>'
    if not issues:
        return (
            f'{title}<div class="card empty">None: every local code was mapped and every unit '
            f"recognised ({_table_link(LAB_MAPPING_REPORT)} is empty).</div>"
        )
    parts = [title]
    for site in sorted({i.site for i in issues}):
        mine = [i for i in issues if i.site == site]  # already by rows, most first
        rows = "".join(
            f"<tr><td>{_badge(i.issue.replace('_', ' '), ISSUE_TONES.get(i.issue, 'none'))}</td>"
            f"<td>{_optional_code(i.code)}"
            f"{_sub(i.code_system)}</td>"
            f"<td>{escape(i.code_display or '—')}</td>"
            f"<td>{_optional_code(i.unit)}</td>"
            f"<td>{escape(i.analyte or '—')}</td>"
            f"<td>{escape(i.source_kind)}</td>"
            f"<td>{_optional_code(i.map_version)}</td>"
            f'<td class="num">{i.rows:,}</td></tr>'
            for i in mine
        )
        parts.append(
            f'<h3 id="lab-{slug(site)}">{_code(site)} '
            f'<span class="muted">{_plural(len(mine), "issue")}, '
            f"{_plural(sum(i.rows for i in mine), 'result')}</span></h3>"
            '<div class="card"><table><thead><tr><th>Issue</th><th>Code</th><th>Display</th>'
            "<th>Unit</th><th>Analyte</th><th>Source</th><th>Map version</th>"
            f'<th class="num">Results</th></tr></thead><tbody>{rows}</tbody></table></div>'
        )
    return "".join(parts)


def _sdtm_section(data: ReportData) -> str:
    lead = (
        "Conformance of each study's SDTM datasets, per study folder of the trials landing "
        "and rule: required variables and values, unique subjects and sequence numbers, "
        "ISO 8601 dates, the domain a dataset declares, subjects missing from DM. Errors "
        "first. Rule ids, dataset and variable names and counts only, never a value."
    )
    heading = _heading(6, "sdtm", "SDTM conformance", lead)
    sdtm = data.sdtm
    if sdtm is None:
        paths = {t.path for t in data.tables}
        reason = (
            _unavailable(SDTM_FINDINGS, paths)
            if SDTM_FINDINGS in paths
            else f"This lake has no trials silo (<code>{SDTM_FINDINGS}</code> is not in it)."
        )
        return (
            heading
            + f'<div class="card empty">SDTM conformance: {NOT_RECORDED}. {reason}</div>'
            + "</section>"
        )
    studies = "".join(_sdtm_study_row(study, sdtm.findings) for study in sdtm.studies)
    overview = (
        '<div class="card"><table><thead><tr><th>Study</th><th>Verdict</th>'
        '<th class="num">Error rules</th><th class="num">Warning rules</th>'
        f'<th class="num">Records concerned</th></tr></thead><tbody>{studies}</tbody>'
        "</table></div>"
        if sdtm.studies
        else f'<div class="card empty">{_table_link(SDTM_FINDINGS)} is empty and the trials '
        "files ledger names no study.</div>"
    )
    if sdtm.findings:
        rows = "".join(_sdtm_finding_row(f) for f in sdtm.findings)
        findings = (
            '<div class="card"><table><thead><tr><th>Study</th><th>Rule</th><th>Severity</th>'
            '<th>Datasets</th><th>Variables</th><th class="num">Findings</th>'
            f'<th class="num">Records</th></tr></thead><tbody>{rows}</tbody></table></div>'
        )
    else:
        findings = (
            '<div class="card empty">No finding: every dataset passed every rule checked.</div>'
        )
    return (
        heading
        + "<h3>Studies</h3>"
        + overview
        + "<h3>Findings by study and rule</h3>"
        + findings
        + "</section>"
    )


def _sdtm_study_row(study: str, findings: tuple[SdtmRuleFindings, ...]) -> str:
    mine = [f for f in findings if f.study == study]
    errors = sum(SEVERITY_RANK.get(f.severity, 2) == 0 for f in mine)
    warnings = len(mine) - errors
    if errors:
        verdict = _badge("errors", "bad")
    elif warnings:
        verdict = _badge("warnings", "warn")
    else:
        verdict = _badge("conforms", "ok")
    return (
        f'<tr id="sdtm-{slug(study or "root")}"><td>{_study(study)}</td><td>{verdict}</td>'
        f'<td class="num">{_count(errors, "bad")}</td>'
        f'<td class="num">{_count(warnings, "warn")}</td>'
        f'<td class="num">{sum(f.rows for f in mine):,}</td></tr>'
    )


def _sdtm_finding_row(f: SdtmRuleFindings) -> str:
    return (
        f'<tr><td class="nowrap">{_study(f.study)}</td><td>{_code(f.rule)}</td>'
        f"<td>{_badge(f.severity, SEVERITY_TONES.get(f.severity, 'none'))}</td>"
        f"<td>{', '.join(_code(d) for d in f.datasets) or '—'}</td>"
        f"<td>{', '.join(_code(v) for v in f.variables) or '—'}</td>"
        f'<td class="num">{f.findings:,}</td><td class="num">{f.rows:,}</td></tr>'
    )


def _study(study: str) -> str:
    return _code(study) if study else '<span class="muted">(no study folder)</span>'


def _unavailable(path: str, paths: set[str]) -> str:
    """Why a table's section part is missing: not in the lake, or not readable."""
    if path in paths:
        return f"{_table_link(path)} could not be used (see the notes above)."
    return f"<code>{escape(path)}</code> is not in the lake yet."


IDENTITY_REASONS = {
    "unknown_mrn": "MRN held by no EHR patient",
    "claimed_by_two_people": "claimed by two people",
    "linked_to_another_person": "already linked to another person",
    "mrn_shared_by_two_people": "MRN shared by two people",
}
"""The identity quarantine's reason codes, in words."""


def _identity_section(data: ReportData) -> str:
    lead = (
        "The restricted person crosswalk links every source identifier of every silo (FHIR "
        "Patient id and MRN, lab patient id per site, DICOM PatientID, VCF sample id, trial "
        "USUBJID per study) to one person, by each silo's deterministic rule. A source row "
        "that cannot be linked without guessing is quarantined with its reason. Counts only, "
        "never an identifier."
    )
    heading = _heading(7, "identity", "Identity linkage", lead)
    identity = data.identity
    if identity is None:
        paths = {t.path for t in data.tables}
        return (
            heading
            + f'<div class="card empty">Identity linkage: {NOT_RECORDED}. '
            + f"{_unavailable(CROSSWALK, paths)}</div></section>"
        )
    return (
        heading
        + _identity_systems(identity, data)
        + _identity_conflicts(identity, data)
        + "</section>"
    )


def _identity_systems(identity: IdentityLinkage, data: ReportData) -> str:
    title = "<h3>Identifiers per source system"
    if not identity.crosswalk_found:
        paths = {t.path for t in data.tables}
        return f'{title}</h3><div class="card empty">{_unavailable(CROSSWALK, paths)}</div>'
    if not identity.systems:
        return f'{title}</h3><div class="card empty">{_table_link(CROSSWALK)} is empty.</div>'
    linked = sum(s.linked for s in identity.systems)
    people = "" if identity.people is None else f" · {_plural(identity.people, 'person', 'people')}"
    rows = "".join(
        f"<tr><td>{escape(s.silo)}</td><td>{_code(s.source_system)}</td>"
        f"<td>{_code(s.identifier_type)}</td>"
        f'<td class="num">{s.linked:,}</td>'
        f"<td>{', '.join(f'{_code(rule)} {n:,}' for rule, n in s.rules) or '—'}</td>"
        f'<td class="num">{_count(s.conflicts, "bad")}</td></tr>'
        for s in identity.systems
    )
    return (
        f'{title} <span class="muted">{linked:,} linked{people}</span></h3>'
        '<div class="card"><table><thead><tr><th>Silo</th><th>Source system</th>'
        '<th>Identifier</th><th class="num">Linked</th><th>Link rules</th>'
        f'<th class="num">Quarantined rows</th></tr></thead><tbody>{rows}</tbody></table></div>'
    )


def _identity_conflicts(identity: IdentityLinkage, data: ReportData) -> str:
    title = "<h3>Conflicts by reason</h3>"
    if not identity.conflicts_found:
        paths = {t.path for t in data.tables}
        return f'{title}<div class="card empty">{_unavailable(IDENTITY_CONFLICTS, paths)}</div>'
    if not identity.conflicts:
        return (
            f'{title}<div class="card empty">None: every manifest row named one known person '
            f"({_table_link(IDENTITY_CONFLICTS)} is empty).</div>"
        )
    rows = "".join(
        f"<tr><td>{_code(c.source_system)}</td><td>{_code(c.identifier_type)}</td>"
        f"<td>{_badge(IDENTITY_REASONS.get(c.reason, c.reason), 'bad')} {_sub(c.reason)}</td>"
        f'<td class="num">{c.rows:,}</td></tr>'
        for c in identity.conflicts
    )
    return (
        f"{title}"
        '<div class="card"><table><thead><tr><th>Source system</th><th>Identifier</th>'
        f'<th>Reason</th><th class="num">Rows</th></tr></thead><tbody>{rows}</tbody>'
        '</table></div><p class="muted">The file and locator of each row are in '
        f"{_table_link(IDENTITY_CONFLICTS)} (restricted).</p>"
    )


def _tables_section(data: ReportData) -> str:
    lead = (
        "Every Delta table of the lake, from its transaction log: rows, data files, size, "
        "current version and the latest commit with the Dagster run that made it."
    )
    rows, layer = [], None
    for t in _by_layer(data.tables):
        if t.layer != layer:
            layer = t.layer
            count = sum(x.layer == layer for x in data.tables)
            rows.append(
                f'<tr class="group"><td colspan="9">{_layer(layer)} '
                f'<span class="muted">{escape(LAYER_BLURBS.get(layer, ""))} · {count} '
                f"table{'s' if count != 1 else ''}</span></td></tr>"
            )
        rows.append(_table_row(t))
    body = (
        '<div class="card"><table><thead><tr><th>Table</th><th>Layer</th><th class="num">Rows'
        '</th><th class="num">Files</th><th class="num">Size</th><th class="num">Version</th>'
        f"<th>Last commit</th><th>Operation</th><th>Run</th></tr></thead><tbody>{''.join(rows)}"
        "</tbody></table></div>"
        if data.tables
        else '<div class="card empty">The lake has no Delta tables yet.</div>'
    )
    return _heading(8, "tables", "Tables", lead) + body + "</section>"


def _access_section(data: ReportData) -> str:
    lead = (
        "Every call to the MCP catalog server, from its hash-chained audit log: who called, "
        "under which role and purpose, what was refused and why, high-risk events and "
        "break-glass releases. Arguments and returned values are never shown."
    )
    a = data.access
    if a is None or a.records == 0:
        empty = (
            "No audit log was read."
            if a is None
            else "The audit log has no records yet: nobody has called the catalog server."
        )
        return (
            _heading(9, "access", "Access", lead)
            + f'<div class="card empty">{empty}</div>'
            + ("</section>")
        )
    if a.verified is None:
        chain = _badge("chain not checked", "none")
    elif a.verified:
        chain = _badge("chain verified", "ok")
    else:
        chain = _badge("chain broken", "bad") + f" {escape(a.problem or '')}"
    decisions = " · ".join(f"{n:,} {escape(d)}" for d, n in a.decisions)
    header = (
        f'<div class="card"><p>{a.records:,} records from {_time(a.first_at)} to '
        f"{_time(a.last_at)}: {decisions}. {chain}</p></div>"
    )
    people = "".join(
        f"<tr><td>{_code(p)}</td><td>{escape(r)}</td><td>{escape(u)}</td>"
        f'<td class="num">{c:,}</td><td class="num">{d:,}</td><td class="num">{n:,}</td></tr>'
        for p, r, u, c, d, n in a.by_principal
    )
    callers = (
        '<h3>Callers</h3><div class="card"><table><thead><tr><th>Principal</th><th>Role</th>'
        '<th>Purpose</th><th class="num">Calls</th><th class="num">Refused</th>'
        f'<th class="num">Rows returned</th></tr></thead><tbody>{people}</tbody></table></div>'
    )
    datasets = "".join(
        f'<tr><td>{_code(d)}</td><td class="num">{c:,}</td><td class="num">{n:,}</td></tr>'
        for d, c, n in a.by_dataset
    )
    by_dataset = (
        '<h3>Datasets</h3><div class="card"><table><thead><tr><th>Dataset</th>'
        '<th class="num">Calls</th><th class="num">Rows returned</th></tr></thead>'
        f"<tbody>{datasets}</tbody></table></div>"
        if a.by_dataset
        else ""
    )
    refusals = (
        "<h3>Refusals</h3><p>" + " · ".join(f"{_code(r)} {n:,}" for r, n in a.refusals) + "</p>"
        if a.refusals
        else ""
    )
    return (
        _heading(9, "access", "Access", lead)
        + header
        + callers
        + by_dataset
        + refusals
        + _events("High-risk events and security alerts", a.alerts)
        + _events("Break-glass releases to review", a.break_glass)
        + "</section>"
    )


def _events(title: str, events: tuple[AccessEvent, ...]) -> str:
    if not events:
        return f'<h3>{title}</h3><div class="card empty">None recorded.</div>'
    rows = "".join(
        f"<tr><td>{_time(e.time)}</td><td>{escape(e.kind)}</td><td>{_code(e.principal or '—')}"
        f"</td><td>{escape(e.role or '—')}</td><td>{_code(e.action)}</td>"
        f"<td>{_code(e.dataset) if e.dataset else '—'}</td><td>{escape(e.decision)}</td>"
        f'<td>{_code(e.reason)}</td><td class="num">{e.risk_score}</td></tr>'
        for e in events
    )
    return (
        f'<h3>{title}</h3><div class="card"><table><thead><tr><th>Time</th><th>Kind</th>'
        "<th>Principal</th><th>Role</th><th>Action</th><th>Dataset</th><th>Decision</th>"
        f'<th>Reason</th><th class="num">Risk</th></tr></thead><tbody>{rows}</tbody></table>'
        "</div>"
    )


def _by_layer(tables: tuple[TableInfo, ...]) -> list[TableInfo]:
    """Tables in the order data flows (bronze first, side channels last), then by path."""
    return sorted(tables, key=lambda t: (LAYER_ORDER.index(t.layer), t.path))


def _table_row(t: TableInfo) -> str:
    if t.error:
        return (
            f'<tr id="table-{slug(t.path)}"><td><code>{escape(t.path)}</code></td>'
            f"<td>{_layer(t.layer)}</td><td colspan='7'>{_badge('unreadable', 'bad')} "
            f"{escape(t.error)}</td></tr>"
        )
    run = (
        f'<code title="{escape(t.last_run_id)}">{escape(t.last_run_id[:8])}</code>'
        if t.last_run_id
        else '<span class="muted">—</span>'
    )
    return (
        f'<tr id="table-{slug(t.path)}"><td><code>{escape(t.path)}</code></td>'
        f"<td>{_layer(t.layer)}</td>"
        f'<td class="num">{_int(t.rows)}</td><td class="num">{t.files:,}</td>'
        f'<td class="num">{_bytes(t.size_bytes)}</td>'
        f'<td class="num">{_version(t.version)}</td>'
        f'<td class="when">{_time(t.last_commit_at)}</td>'
        f"<td>{escape(t.last_operation or '—')}</td><td>{run}</td></tr>"
    )


# ---------------------------------------------------------------------------------------------
# Formatting


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def _optional_code(text: str | None) -> str:
    return _code(text) if text else '<span class="muted">—</span>'


def _sub(text: str | None) -> str:
    return f'<span class="sub">{escape(text)}</span>' if text else ""


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (plural or word + 's')}"


def _table_link(path: str) -> str:
    return f'<a href="#table-{slug(path)}">{_code(path)}</a>'


def _badge(text: str, tone: str) -> str:
    return f'<span class="badge b-{tone}">{escape(text)}</span>'


def _layer(layer: str) -> str:
    accent, tint = TABLE_LAYER_COLOURS.get(layer, TABLE_LAYER_COLOURS["other"])
    return (
        f'<span class="layer" style="color:{accent};background:{tint};border-color:{accent}40">'
        f"{escape(layer)}</span>"
    )


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else '<span class="muted">—</span>'


def _age(value: datetime | None, now: datetime) -> str:
    return _duration((now - value).total_seconds()) if value else "—"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    sign, s = ("−", -seconds) if seconds < 0 else ("", seconds)
    if s < 90:
        text = f"{s:.0f} s"
    elif s < 90 * 60:
        text = f"{s / 60:.0f} min"
    elif s < 48 * 3600:
        text = f"{s / 3600:.0f} h"
    else:
        days, rest = divmod(s, 86400)
        hours = round(rest / 3600)
        text = f"{days:.0f} d" + (f" {hours} h" if hours else "")
    return sign + text


def _int(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _count(value: int, tone: str) -> str:
    return f'<span class="badge b-{tone}">{value:,}</span>' if value else "0"


def _rejects(value: int | None) -> str:
    if not value:
        return _int(value)
    return f'<span class="badge b-warn">{value:,}</span>'


def _version(value: int | None) -> str:
    return "—" if value is None else f"v{value}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} %"


def _bytes(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{value:,} B"


def _compact(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f} M"
    if value >= 10_000:
        return f"{value / 1000:.1f} k"
    return f"{value:,}"
