"""``biofed report``: a static HTML site for compliance officers.

Collect once from a lake (:func:`collect_report_data`), render once to a folder
(:func:`render_report`). The page is self-contained (inline CSS and SVG, no script, no
network) and shows lineage, quality, freshness, ingestion, every Delta table and who
accessed the catalog server.
"""

from quality.report.collect import collect_report_data
from quality.report.model import (
    AccessEvent,
    AccessSummary,
    FreshnessInfo,
    GoldView,
    GraphNode,
    LineageGraph,
    QualityOutcome,
    QualityRun,
    QualitySuite,
    RejectCount,
    ReportData,
    SourceFile,
    Summary,
    TableInfo,
)
from quality.report.render import render_report

__all__ = [
    "AccessEvent",
    "AccessSummary",
    "FreshnessInfo",
    "GoldView",
    "GraphNode",
    "LineageGraph",
    "QualityOutcome",
    "QualityRun",
    "QualitySuite",
    "RejectCount",
    "ReportData",
    "SourceFile",
    "Summary",
    "TableInfo",
    "collect_report_data",
    "render_report",
]
