"""Tests for quality.lineage: events, transports, reading back and the lineage graph.

Every emitted event is validated against the OpenLineage JSON schemas stored under
tests/data/openlineage (see its README for sources and version notes), offline.
"""

import json
import logging
import multiprocessing
import re
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from quality.lineage import (
    JOB_NAMESPACE,
    PRODUCER,
    LineageDataset,
    LineageEmitter,
    NdjsonFileTransport,
    asset_run_id,
    dataset_identity,
    lineage_graph,
    lineage_path,
    read_events,
    read_events_with_errors,
)

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "data" / "openlineage"
DAGSTER_RUN_ID = "4b7f3a52-9c1e-4e55-8d0a-2f6f1b2c3d4e"

# The store holds no core schema whose $id is the 2-0-2 (client) or 1-0-2 (older facets)
# version: the nearest stored cores answer for those URIs (README.md explains).
CORE_ALIASES = {
    "https://openlineage.io/spec/2-0-2/OpenLineage.json": (
        "https://openlineage.io/spec/2-0-7/OpenLineage.json"
    ),
    "https://openlineage.io/spec/1-0-2/OpenLineage.json": (
        "https://openlineage.io/spec/1-0-1/OpenLineage.json"
    ),
}


def _schema_registry() -> tuple[Registry, dict[str, str]]:
    """All stored schemas by $id (plus core aliases), and facet name -> stored $defs URI."""
    resources: dict[str, Resource] = {}
    facet_defs: dict[str, str] = {}
    for path in sorted(SCHEMA_DIR.rglob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources[contents["$id"]] = Resource.from_contents(
            contents, default_specification=DRAFT202012
        )
        if path.parent.name == "facets":
            for name in contents["$defs"]:
                facet_defs[name] = f"{contents['$id']}#/$defs/{name}"
    for alias, stored in CORE_ALIASES.items():
        resources[alias] = resources[stored]
    return Registry().with_resources(resources.items()), facet_defs


REGISTRY, FACET_DEFS = _schema_registry()


def _validator(ref: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"$ref": ref}, registry=REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def _facets_of(event: dict) -> list[tuple[str, dict]]:
    found = list(event["run"].get("facets", {}).items())
    found += event["job"].get("facets", {}).items()
    for dataset in event.get("inputs", []):
        found += dataset.get("facets", {}).items()
        found += dataset.get("inputFacets", {}).items()
    for dataset in event.get("outputs", []):
        found += dataset.get("facets", {}).items()
        found += dataset.get("outputFacets", {}).items()
    return found


def assert_valid_openlineage(event: dict) -> None:
    """Validate the event against its schemaURL and each facet against its stored schema."""
    _validator(event["schemaURL"]).validate(event)
    # The stored core declares date-time and uri formats that jsonschema only checks with
    # optional packages, so check the two top-level ones by hand.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", event["eventTime"])
    assert event["producer"] == PRODUCER
    assert urlsplit(PRODUCER).scheme == "https"
    for key, facet in _facets_of(event):
        facet_name = facet["_schemaURL"].rpartition("#/$defs/")[2]
        assert facet_name in FACET_DEFS, f"no stored schema for facet {key} ({facet_name})"
        _validator(FACET_DEFS[facet_name]).validate(facet)
        assert facet["_producer"] == PRODUCER


def _bronze_and_silver(lake: Path) -> tuple[LineageDataset, LineageDataset]:
    bronze = str(lake / "bronze" / "lab" / "results")
    silver = str(lake / "silver" / "lab" / "observations")
    source = LineageDataset(
        uri=bronze,
        fields=(("mrn", "String", "Lab MRN"), ("loinc", "String", "LOINC code")),
        version="4",
        quality={
            "row_count": 1200,
            "assertions": [("not_null", True, "mrn"), ("row_count_above_zero", True, None)],
            "column_metrics": {"mrn": {"nullCount": 0, "distinctCount": 310}},
        },
    )
    target = LineageDataset(
        uri=silver,
        fields=(
            ("person_key", "String", "Linked person"),
            ("loinc_code", "String", "Normalised LOINC"),
        ),
        column_lineage={
            "person_key": ((bronze, "mrn"),),
            "loinc_code": ((bronze, "loinc"),),
        },
        row_count=1187,
        version="2",
    )
    return source, target


@pytest.fixture
def file_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
    monkeypatch.delenv("OPENLINEAGE_API_KEY", raising=False)
    monkeypatch.delenv("OPENLINEAGE_ENDPOINT", raising=False)


def test_start_and_complete_for_a_delta_job_validate_against_the_schema(
    tmp_path: Path, file_mode: None
) -> None:
    source, target = _bronze_and_silver(tmp_path)
    run_id = asset_run_id(DAGSTER_RUN_ID, "silver/lab/observations")
    with LineageEmitter.for_lake(tmp_path) as emitter:
        for emit in (emitter.start, emitter.complete):
            emit(
                run_id=run_id,
                job="silver/lab/observations",
                inputs=[source],
                outputs=[target],
                description="Conformed lab observations, one row per result.",
                parent=(DAGSTER_RUN_ID, "dagster.run"),
            )

    events = read_events(tmp_path)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for event in events:
        assert_valid_openlineage(event)
    complete = events[1]
    assert complete["run"]["runId"] == run_id
    assert complete["job"] == {
        "namespace": JOB_NAMESPACE,
        "name": "silver/lab/observations",
        "facets": complete["job"]["facets"],
    }
    assert complete["run"]["facets"]["parent"]["run"]["runId"] == DAGSTER_RUN_ID
    assert complete["run"]["facets"]["parent"]["job"] == {
        "namespace": JOB_NAMESPACE,
        "name": "dagster.run",
        "facets": {},
    }
    assert complete["job"]["facets"]["documentation"]["description"].startswith("Conformed")

    (source_event,) = complete["inputs"]
    assert (source_event["namespace"], source_event["name"]) == ("file", source.uri)
    assert source_event["facets"]["version"]["datasetVersion"] == "4"
    assert source_event["inputFacets"]["dataQualityAssertions"]["assertions"] == [
        {"assertion": "not_null", "success": True, "column": "mrn", "params": {}},
        {"assertion": "row_count_above_zero", "success": True, "params": {}},
    ]
    metrics = source_event["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 1200
    assert metrics["columnMetrics"]["mrn"]["nullCount"] == 0

    (target_event,) = complete["outputs"]
    assert [f["name"] for f in target_event["facets"]["schema"]["fields"]] == [
        "person_key",
        "loinc_code",
    ]
    assert target_event["facets"]["version"]["datasetVersion"] == "2"
    assert target_event["outputFacets"]["outputStatistics"]["rowCount"] == 1187
    person_key = target_event["facets"]["columnLineage"]["fields"]["person_key"]
    assert [(f["namespace"], f["name"], f["field"]) for f in person_key["inputFields"]] == [
        ("file", source.uri, "mrn")
    ]


def test_fail_carries_the_fixed_error_message_and_no_stack_trace(
    tmp_path: Path, file_mode: None
) -> None:
    source, target = _bronze_and_silver(tmp_path)
    run_id = asset_run_id(DAGSTER_RUN_ID, "silver/lab/observations")
    with LineageEmitter.for_lake(tmp_path) as emitter:
        emitter.fail(
            run_id=run_id,
            job="silver/lab/observations",
            inputs=[source],
            outputs=[LineageDataset(uri=target.uri)],
            error="lab observations failed the unit normalisation step",
        )

    (event,) = read_events(tmp_path)
    assert_valid_openlineage(event)
    assert event["eventType"] == "FAIL"
    assert event["run"]["facets"]["errorMessage"] == {
        "_producer": PRODUCER,
        "_schemaURL": event["run"]["facets"]["errorMessage"]["_schemaURL"],
        "message": "lab observations failed the unit normalisation step",
        "programmingLanguage": "python",
    }


def test_fail_without_an_error_sentence_is_rejected(tmp_path: Path, file_mode: None) -> None:
    with (
        LineageEmitter.for_lake(tmp_path) as emitter,
        pytest.raises(ValueError, match="fixed sentence"),
    ):
        emitter.fail(run_id=str(uuid.uuid4()), job="silver/lab/observations", error=" ")
    assert read_events(tmp_path) == []


def test_read_is_one_complete_event_with_the_gold_table_as_its_only_input(
    tmp_path: Path, file_mode: None
) -> None:
    gold = tmp_path / "gold" / "researcher" / "lab_results"
    with LineageEmitter.for_lake(tmp_path) as emitter:
        run_id = emitter.read(
            job="mcp.query_lab_results", dataset=LineageDataset(uri=str(gold), version="7")
        )

    (event,) = read_events(tmp_path)
    assert_valid_openlineage(event)
    assert event["eventType"] == "COMPLETE"
    assert event["run"]["runId"] == run_id
    assert uuid.UUID(run_id).version == 7
    assert event["outputs"] == []
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [("file", str(gold))]
    assert event["inputs"][0]["facets"]["version"]["datasetVersion"] == "7"
    assert event["run"]["facets"] == {}
    assert event["job"]["facets"] == {}


def test_quality_on_an_output_dataset_is_rejected(tmp_path: Path, file_mode: None) -> None:
    checked = LineageDataset(uri=str(tmp_path / "silver" / "x"), quality={"row_count": 1})
    with (
        LineageEmitter.for_lake(tmp_path) as emitter,
        pytest.raises(ValueError, match="input datasets"),
    ):
        emitter.complete(run_id=str(uuid.uuid4()), job="silver/x", outputs=[checked])


def test_a_run_id_that_is_not_a_uuid_is_rejected(tmp_path: Path, file_mode: None) -> None:
    with (
        LineageEmitter.for_lake(tmp_path) as emitter,
        pytest.raises(ValueError, match="RFC 4122"),
    ):
        emitter.start(run_id="run-42", job="silver/x")


def test_a_parent_given_as_job_then_run_id_is_rejected(tmp_path: Path, file_mode: None) -> None:
    with (
        LineageEmitter.for_lake(tmp_path) as emitter,
        pytest.raises(ValueError, match=r"parent run id \(parent\[0\]\)"),
    ):
        emitter.start(
            run_id=str(uuid.uuid4()), job="silver/x", parent=("dagster.run", DAGSTER_RUN_ID)
        )


def test_the_file_transport_appends_one_json_line_per_event(
    tmp_path: Path, file_mode: None
) -> None:
    gold = LineageDataset(uri=str(tmp_path / "gold" / "researcher" / "lab_results"))
    with LineageEmitter.for_lake(tmp_path) as emitter:
        for _ in range(3):
            emitter.read(job="mcp.query_lab_results", dataset=gold)

    raw = lineage_path(tmp_path).read_bytes()
    lines = raw.split(b"\n")
    assert lines[-1] == b""
    assert len(lines[:-1]) == 3
    assert [json.loads(line)["eventType"] for line in lines[:-1]] == ["COMPLETE"] * 3
    assert lineage_path(tmp_path) == tmp_path / "_lineage" / "events.ndjson"


def _append_events(path: str, worker: int, count: int) -> None:
    emitter = LineageEmitter(NdjsonFileTransport(path))
    dataset = LineageDataset(
        uri=f"/lake/gold/researcher/view_{worker}",
        # Wide enough that one event is larger than a pipe buffer or a stdio block.
        fields=tuple((f"column_{i:03d}", "String", "x" * 40) for i in range(120)),
    )
    for _ in range(count):
        emitter.read(job=f"mcp.worker_{worker}", dataset=dataset)


def test_two_processes_appending_concurrently_write_400_parseable_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "_lineage" / "events.ndjson"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_append_events, args=(str(path), worker, 200)) for worker in (1, 2)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0

    events, bad_lines = read_events_with_errors(tmp_path)
    assert bad_lines == 0
    assert len(events) == 400
    assert sorted({e["job"]["name"] for e in events}) == ["mcp.worker_1", "mcp.worker_2"]
    assert len({e["run"]["runId"] for e in events}) == 400


def test_a_torn_last_line_costs_one_bad_line_and_the_next_event_survives(
    tmp_path: Path, file_mode: None
) -> None:
    path = lineage_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"eventType": "COMPLETE", "job": {"namesp')  # a crash mid-write

    with LineageEmitter.for_lake(tmp_path) as emitter:
        emitter.read(job="mcp.query_lab_results", dataset=LineageDataset(uri="/lake/gold/x"))

    events, bad_lines = read_events_with_errors(tmp_path)
    assert bad_lines == 1
    assert [e["job"]["name"] for e in events] == ["mcp.query_lab_results"]
    assert read_events(tmp_path) == events


def test_a_lake_without_lineage_reads_as_no_events(tmp_path: Path) -> None:
    assert read_events_with_errors(tmp_path) == ([], 0)
    assert read_events(tmp_path) == []


def test_a_broken_lineage_store_raises_in_file_mode(tmp_path: Path, file_mode: None) -> None:
    (tmp_path / "_lineage").write_text("a file where the folder should be", encoding="utf-8")
    with LineageEmitter.for_lake(tmp_path) as emitter, pytest.raises(OSError):
        emitter.read(job="mcp.query_lab_results", dataset=LineageDataset(uri="/lake/gold/x"))


def test_file_lineage_on_an_object_store_lake_is_refused(file_mode: None) -> None:
    with pytest.raises(ValueError, match="OPENLINEAGE_URL"):
        LineageEmitter.for_lake("s3://biofed-lake/lake")


class _RecordingHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def lineage_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_http_transport_posts_each_event_to_openlineage_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lineage_server: ThreadingHTTPServer
) -> None:
    host, port = lineage_server.server_address[:2]
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://{host}:{port}")
    monkeypatch.setenv("OPENLINEAGE_API_KEY", "test-key")
    monkeypatch.delenv("OPENLINEAGE_ENDPOINT", raising=False)
    source, target = _bronze_and_silver(tmp_path)
    run_id = asset_run_id(DAGSTER_RUN_ID, "silver/lab/observations")

    with LineageEmitter.for_lake(tmp_path) as emitter:
        emitter.start(run_id=run_id, job="silver/lab/observations", inputs=[source])
        emitter.complete(
            run_id=run_id, job="silver/lab/observations", inputs=[source], outputs=[target]
        )

    received = lineage_server.received  # type: ignore[attr-defined]
    assert [path for path, _, _ in received] == ["/api/v1/lineage", "/api/v1/lineage"]
    for _, headers, body in received:
        assert headers["Content-Type"] == "application/json"
        assert headers["Authorization"] == "Bearer test-key"
        assert_valid_openlineage(json.loads(body))
    assert [json.loads(body)["eventType"] for _, _, body in received] == ["START", "COMPLETE"]
    assert not (tmp_path / "_lineage").exists()


def test_an_unreachable_lineage_server_does_not_fail_the_run_and_logs_no_payload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago refuses connections
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("OPENLINEAGE_API_KEY", raising=False)
    source, target = _bronze_and_silver(tmp_path)
    run_id = asset_run_id(DAGSTER_RUN_ID, "silver/lab/observations")

    with caplog.at_level(logging.WARNING), LineageEmitter.for_lake(tmp_path) as emitter:
        emitter.complete(
            run_id=run_id, job="silver/lab/observations", inputs=[source], outputs=[target]
        )

    ours = [r for r in caplog.records if r.name == "quality.lineage"]
    assert len(ours) == 1
    assert "silver/lab/observations" in ours[0].getMessage()
    for record in caplog.records:
        text = record.getMessage()
        for secret in (run_id, source.uri, target.uri, "eventTime", "1187", PRODUCER):
            assert secret not in text
    assert not (tmp_path / "_lineage").exists()


def test_lineage_graph_connects_input_to_job_to_output(tmp_path: Path, file_mode: None) -> None:
    source, target = _bronze_and_silver(tmp_path)
    run_id = asset_run_id(DAGSTER_RUN_ID, "silver/lab/observations")
    with LineageEmitter.for_lake(tmp_path) as emitter:
        emitter.start(run_id=run_id, job="silver/lab/observations", inputs=[source])
        emitter.complete(
            run_id=run_id, job="silver/lab/observations", inputs=[source], outputs=[target]
        )
        emitter.read(job="mcp.query_observations", dataset=LineageDataset(uri=target.uri))
        emitter.start(run_id=str(uuid.uuid4()), job="never/finished", inputs=[target])

    malformed = [{"eventType": "COMPLETE"}, {"eventType": "COMPLETE", "job": "x"}]
    nodes, edges = lineage_graph([*read_events(tmp_path), *malformed])
    bronze, silver = f"file:{source.uri}", f"file:{target.uri}"
    asset_job, mcp_job = "job:biofed.silver/lab/observations", "job:biofed.mcp.query_observations"
    assert nodes == {bronze, silver, asset_job, mcp_job}
    assert edges == {(bronze, asset_job), (asset_job, silver), (silver, mcp_job)}


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///lake/gold/researcher/lab", ("file", "/lake/gold/researcher/lab")),
        ("file://localhost/lake/gold/lab%20results", ("file", "/lake/gold/lab results")),
        ("file://nas01/lake/gold/lab", ("file://nas01", "/lake/gold/lab")),
        ("/lake/silver/lab/../lab/observations", ("file", "/lake/silver/lab/observations")),
        ("s3://biofed-lake/gold/researcher/lab", ("s3://biofed-lake", "gold/researcher/lab")),
        ("s3a://biofed-lake/gold/lab/", ("s3://biofed-lake", "gold/lab")),
        ("gs://biofed-lake/silver/lab", ("gs://biofed-lake", "silver/lab")),
        (
            "abfss://lake@biofed.dfs.core.windows.net/gold/lab",
            ("abfss://lake@biofed.dfs.core.windows.net", "gold/lab"),
        ),
    ],
)
def test_dataset_identity_follows_the_openlineage_naming_spec(
    uri: str, expected: tuple[str, str]
) -> None:
    assert dataset_identity(uri) == expected


def test_dataset_identity_resolves_a_relative_path_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert dataset_identity("lake/gold/lab") == ("file", (Path.cwd() / "lake/gold/lab").as_posix())


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "catalog://datasets/lab_results",
        "https://example.org/lake/gold",
        "s3://key:secret@biofed-lake/gold",
        "abfss://lake@biofed.dfs.core.windows.net/gold?sig=token",
        "s3:///no-bucket",
    ],
)
def test_dataset_identity_refuses_unsupported_or_credential_bearing_uris(uri: str) -> None:
    with pytest.raises(ValueError):
        dataset_identity(uri)


def test_asset_run_id_is_a_stable_uuid_per_dagster_run_and_asset() -> None:
    first = asset_run_id(DAGSTER_RUN_ID, "silver/lab/observations")
    assert first == asset_run_id(DAGSTER_RUN_ID, "silver/lab/observations")
    assert uuid.UUID(first).version == 5
    assert first != asset_run_id(DAGSTER_RUN_ID, "gold/researcher/lab_results")
    assert first != asset_run_id(str(uuid.uuid4()), "silver/lab/observations")
