"""The compliance report: collected from a real Delta lake in tmp_path, rendered, and opened in
headless Chromium."""

import json
import shutil
import subprocess
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import write_deltalake

from quality.report import ReportData, collect_report_data, render_report

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_COPY = Path("/tmp/biofed-report-screenshot.png")
# The report's reference time: shortly after the fixture's Delta commits.
NOW = (datetime.now(UTC) + timedelta(minutes=30)).replace(microsecond=0)
# A value that exists only inside a clinical table: the report must never show it.
SENTINEL_NAME = "Qzxwvutsrq"

LEDGER = {
    "Patient.ndjson": (3, 0),
    "Observation.ndjson": (5, 2),
}
TABLES = (
    "bronze/ehr/files",
    "bronze/ehr/patients",
    "bronze/ehr/observations",
    "restricted/person_crosswalk",
    "silver/ehr/patients",
    "silver/ehr/observations",
    "gold/research/patients",
    "gold/research/observations",
    "_rejects/ehr/fhir",
)


def _write(lake: Path, path: str, frame: pl.DataFrame, mode: str = "overwrite") -> None:
    write_deltalake(str(lake / path), frame.to_arrow(), mode=mode)


def _landing(root: Path) -> Path:
    folder = root / "landing" / "ehr"
    folder.mkdir(parents=True)
    for name, (records, _rejects) in LEDGER.items():
        (folder / name).write_text("{}\n" * records, encoding="utf-8")
    return folder


def _clinical_tables(lake: Path) -> None:
    people = pl.DataFrame({"id": ["p1", "p2", "p3"], "family_name": [SENTINEL_NAME, "A", "B"]})
    observations = pl.DataFrame({"id": [f"o{i}" for i in range(5)], "value": [1.0] * 5})
    _write(lake, "bronze/ehr/patients", people)
    _write(lake, "bronze/ehr/observations", observations.head(3))
    _write(lake, "restricted/person_crosswalk", pl.DataFrame({"person_key": ["k1", "k2"]}))
    _write(lake, "silver/ehr/patients", people)
    _write(lake, "silver/ehr/observations", observations.head(3))
    _write(lake, "gold/research/patients", pl.DataFrame({"person_pseudonym": ["x1", "x2"]}))
    _write(lake, "gold/research/observations", observations.head(3).drop("id"))


def _ledger_and_rejects(lake: Path) -> None:
    at = NOW - timedelta(hours=2)
    _write(
        lake,
        "bronze/ehr/files",
        pl.DataFrame(
            {
                "source_file": list(LEDGER),
                "source_sha256": ["ab" * 32, "cd" * 32],
                "bytes": [9, 15],
                "records": [r for r, _ in LEDGER.values()],
                "rejects": [j for _, j in LEDGER.values()],
                "ingested_at": [at, at],
            }
        ),
    )
    _write(
        lake,
        "_rejects/ehr/fhir",
        pl.DataFrame(
            {
                "source": ["Observation.ndjson", "Observation.ndjson"],
                "locator": ["line 4", "line 5"],
                "reason": ["invalid JSON", "unknown resourceType"],
                "source_sha256": ["cd" * 32] * 2,
                "ingested_at": [at, at],
            }
        ),
    )


def _quality_history(lake: Path) -> None:
    outcome = {
        "expectation": "expect_column_values_to_be_unique",
        "column": "id",
        "description": "id is unique",
        "severity": "error",
        "success": True,
        "element_count": 3,
        "unexpected_count": 0,
        "unexpected_percent": 0.0,
    }
    failed = {**outcome, "success": False, "unexpected_count": 1, "unexpected_percent": 33.3}
    rows = [
        ("silver/ehr/patients", 0, NOW - timedelta(days=2), True, 0, [outcome]),
        ("silver/ehr/patients", 1, NOW - timedelta(days=1), False, 1, [failed, outcome]),
        ("gold/research/patients", 0, NOW - timedelta(days=1), True, 0, [outcome]),
    ]
    _write(
        lake,
        "_quality/results",
        pl.DataFrame(
            {
                "table": [r[0] for r in rows],
                "suite": [r[0].replace("/", "_") for r in rows],
                "delta_version": [r[1] for r in rows],
                "evaluated_at": [r[2] for r in rows],
                "success": [r[3] for r in rows],
                "rows": [3, 3, 2],
                "expectations": [len(r[5]) for r in rows],
                "failed_errors": [r[4] for r in rows],
                "failed_warnings": [0, 0, 0],
                "outcomes_json": [json.dumps(r[5]) for r in rows],
                "dagster_run_id": ["run-a", "run-b", "run-b"],
            },
            schema_overrides={"delta_version": pl.Int64, "evaluated_at": pl.Datetime("us", "UTC")},
        ),
    )


def _manifest(lake: Path, *, with_freshness: bool) -> None:
    def dataset(name: str, status: str, newest: datetime) -> dict:
        entry = {
            "name": name,
            "audience": "research",
            "path": f"gold/research/{name}",
            "title": f"{name.title()} (de-identified)",
            "description": f"De-identified {name}.",
            "owner": "data stewards",
            "key": ["person_pseudonym"],
            "columns": [{"name": "person_pseudonym", "type": "string"}],
            "row_count": 2,
            "delta_version": 0,
            "last_materialized": (NOW - timedelta(hours=1)).isoformat(),
            "upstream": [f"silver/ehr/{name}"],
            "max_limit": 1000,
        }
        if with_freshness:
            entry["freshness"] = {
                "warn_after_seconds": 93600,
                "fail_after_seconds": 259200,
                "newest_source_at": newest.isoformat(),
                "status": status,
                "checked_at": (NOW - timedelta(minutes=5)).isoformat(),
            }
        return entry

    manifest = {
        "manifest_version": 1,
        "generated_at": (NOW - timedelta(minutes=5)).isoformat(),
        "datasets": [
            dataset("patients", "fresh", NOW - timedelta(hours=3)),
            dataset("observations", "stale", NOW - timedelta(days=9)),
        ],
    }
    (lake / "_catalog").mkdir(parents=True)
    (lake / "_catalog" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def _run_event(job: str, inputs: list[str], outputs: list[str]) -> dict:
    def datasets(names: list[str]) -> list[dict]:
        return [{"namespace": "file", "name": n} for n in names]

    return {
        "eventType": "COMPLETE",
        "eventTime": NOW.isoformat(),
        "producer": "https://example.org/biofed",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid5(uuid.NAMESPACE_URL, job))},
        "job": {"namespace": "biofed", "name": job},
        "inputs": datasets(inputs),
        "outputs": datasets(outputs),
    }


def _lineage_events(lake: Path, landing: Path) -> None:
    def t(path: str) -> str:
        return str(lake / path)

    files = [str(landing / name) for name in LEDGER]
    crosswalk = t("restricted/person_crosswalk")
    events = [
        _run_event(
            "bronze.ehr",
            files,
            [t("bronze/ehr/patients"), t("bronze/ehr/observations"), t("bronze/ehr/files"),
             t("_rejects/ehr/fhir")],
        ),
        _run_event("restricted.person_crosswalk", [t("bronze/ehr/patients")], [crosswalk]),
    ]
    for name in ("patients", "observations"):
        events.append(
            _run_event(f"silver.ehr.{name}", [t(f"bronze/ehr/{name}"), crosswalk],
                       [t(f"silver/ehr/{name}")])
        )
        events.append(
            _run_event(f"gold.research.{name}", [t(f"silver/ehr/{name}"), crosswalk],
                       [t(f"gold/research/{name}")])
        )
    events.append(
        _run_event("catalog", [t("gold/research/patients"), t("gold/research/observations")],
                   [t("_catalog/manifest.json")])
    )
    (lake / "_lineage").mkdir()
    (lake / "_lineage" / "events.ndjson").write_text(
        "".join(json.dumps(e) + "\n" for e in events), encoding="utf-8"
    )


@pytest.fixture
def full_lake(tmp_path: Path) -> Path:
    """A lake with every layer, a quality history, freshness, a ledger, rejects and lineage."""
    lake = tmp_path / "lake"
    landing = _landing(tmp_path)
    _clinical_tables(lake)
    _ledger_and_rejects(lake)
    _quality_history(lake)
    _manifest(lake, with_freshness=True)
    _lineage_events(lake, landing)
    return lake


@pytest.fixture
def bare_lake(tmp_path: Path) -> Path:
    """What the pipeline writes before quality, lineage and freshness are recorded."""
    lake = tmp_path / "lake"
    _landing(tmp_path)
    _clinical_tables(lake)
    _ledger_and_rejects(lake)
    _manifest(lake, with_freshness=False)
    return lake


@pytest.fixture
def data_docs(tmp_path: Path) -> Path:
    folder = tmp_path / "gx" / "data_docs" / "local_site"
    (folder / "validations").mkdir(parents=True)
    (folder / "validations" / "run.html").write_text("<p>run</p>", encoding="utf-8")
    (folder / "index.html").write_text("<h1>Data Docs</h1>", encoding="utf-8")
    return folder / "index.html"


def _reachable(data: ReportData, start: str) -> set[str]:
    successors = defaultdict(set)
    for a, b in data.lineage.edges:
        successors[a].add(b)
    seen, frontier = set(), [start]
    while frontier:
        for nxt in successors[frontier.pop()] - seen:
            seen.add(nxt)
            frontier.append(nxt)
    return seen


def test_report_shows_every_table_view_freshness_failure_and_a_drawn_lineage(
    full_lake: Path, data_docs: Path, tmp_path: Path
):
    data = collect_report_data(full_lake, data_docs_index=data_docs, now=NOW)
    index = render_report(data, tmp_path / "report")
    html = index.read_text(encoding="utf-8")

    assert sorted(t.path for t in data.tables) == sorted([*TABLES, "_quality/results"])
    for path in (*TABLES, "_quality/results"):
        assert f"<code>{path}</code>" in html
    for tool in ("query_patients", "query_observations"):
        assert tool in html
    assert '<span class="badge b-ok">fresh</span>' in html
    assert '<span class="badge b-bad">stale</span>' in html
    assert '<span class="badge b-bad">fail</span>' in html
    assert (data.summary.quality_passed, data.summary.quality_failed) == (1, 1)
    assert data.summary.stale_views == 1
    assert data.summary.rejected_records == 2
    assert "invalid JSON" in html and "unknown resourceType" in html

    assert data.lineage.origin == "events"
    sources = {n.id for n in data.lineage.nodes if n.layer == "source"}
    assert sources == {"source:ehr/Observation.ndjson", "source:ehr/Patient.ndjson"}
    assert "mcp:query_patients" in _reachable(data, "source:ehr/Patient.ndjson")
    assert ("table:gold/research/patients", "mcp:query_patients") in data.lineage.edges
    assert not any(n.layer == "catalog" for n in data.lineage.nodes)
    assert '<svg class="lineage"' in html
    for label in ("Patient.ndjson", "person_crosswalk", "query_observations"):
        assert f">{label}</text>" in html

    assert (tmp_path / "report" / "data_docs" / "index.html").is_file()
    assert 'href="data_docs/index.html"' in html
    assert SENTINEL_NAME not in html


def test_report_is_the_same_for_the_same_data(full_lake: Path, tmp_path: Path):
    data = collect_report_data(full_lake, now=NOW)
    first = render_report(data, tmp_path / "a").read_bytes()
    second = render_report(collect_report_data(full_lake, now=NOW), tmp_path / "b").read_bytes()
    assert first == second


def test_lake_without_quality_lineage_or_freshness_reads_not_yet_recorded(
    bare_lake: Path, tmp_path: Path
):
    data = collect_report_data(bare_lake, now=NOW)
    html = render_report(data, tmp_path / "report").read_text(encoding="utf-8")

    assert data.quality == () and not data.quality_recorded
    assert data.summary.quality_passed is None
    assert all(v.freshness is None for v in data.gold_views)
    assert data.lineage.origin == "inferred"
    assert "not yet recorded" in html
    assert "Quality results: not yet recorded" in html
    assert "Great Expectations Data Docs: not provided" in html
    # The inferred graph still runs from the landing file to the tool that serves it.
    assert "mcp:query_patients" in _reachable(data, "source:ehr/Patient.ndjson")
    for path in TABLES:
        assert f"<code>{path}</code>" in html


def _ensure_chromium() -> None:
    script = REPO / "scripts" / "ensure-chromium.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is needed to check the report in a browser and {script.name} could not "
            f"provide it:\n{done.stdout}\n{done.stderr}"
        )


def test_report_renders_in_headless_chromium_without_console_errors(
    full_lake: Path, data_docs: Path, tmp_path: Path
):
    _ensure_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"Playwright for Python is needed (pip install -e '.[dev]'): {exc}")
    index = render_report(
        collect_report_data(full_lake, data_docs_index=data_docs, now=NOW), tmp_path / "report"
    )
    shots = tmp_path / "reports"
    shots.mkdir()
    screenshot = shots / "report.png"
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto(index.as_uri(), wait_until="load")
            drawn = page.locator("svg.lineage a.node").count()
            docs_href = page.locator("a.pill-link").get_attribute("href")
            page.screenshot(path=str(screenshot), full_page=True)
            page.goto((index.parent / docs_href).as_uri(), wait_until="load")
            docs_heading = page.locator("h1").inner_text()
        finally:
            browser.close()
    shutil.copyfile(screenshot, SCREENSHOT_COPY)

    assert problems == []
    assert drawn >= 13  # 2 files, 8 tables in the graph's layers, 2 tools
    assert docs_heading == "Data Docs"
    assert screenshot.stat().st_size > 50_000
