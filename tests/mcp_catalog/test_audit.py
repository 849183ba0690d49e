"""The tamper-evident, fail-closed audit log, on real files."""

import base64
import errno
import hashlib
import hmac
import json
import multiprocessing
import os
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydantic
import pytest

from mcp_catalog.audit import (
    AUDIT_KEY_ENV,
    AuditError,
    AuditEvent,
    AuditKeyError,
    AuditLog,
    AuditWriteError,
    VerifyReport,
    load_audit_key,
    redact_arguments,
    verify_file,
)

KEY = bytes(range(32))
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _event(**overrides) -> AuditEvent:
    fields = {
        "correlation_id": "req-1",
        "transport": "http",
        "principal": "alice",
        "role": "researcher",
        "purpose": "research",
        "protocol": "BIOFED-DEMO-001",
        "action": "query_patients",
        "dataset": "research/patients",
        "decision": "allow",
        "reason": "ok",
    }
    return AuditEvent(**{**fields, **overrides})


def _filled(directory: Path, count: int) -> AuditLog:
    log = AuditLog(directory, KEY)
    for number in range(1, count + 1):
        log.append(_event(correlation_id=f"req-{number}", rows=number))
    return log


def _log_lines(directory: Path) -> list[bytes]:
    return (directory / "audit.ndjson").read_bytes().splitlines(keepends=True)


def _write_log_lines(directory: Path, lines: list[bytes]) -> None:
    (directory / "audit.ndjson").write_bytes(b"".join(lines))


def _recomputed_mac(record: dict) -> str:
    unsealed = {name: value for name, value in record.items() if name != "mac"}
    text = json.dumps(unsealed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (*_strings(key), *_strings(item))]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


# The chain


def test_appended_records_form_a_contiguous_chain_whose_macs_recompute(tmp_path):
    log = AuditLog(tmp_path, KEY)
    stored = [log.append(_event(correlation_id=f"req-{n}")) for n in range(1, 6)]

    assert [record["seq"] for record in stored] == [1, 2, 3, 4, 5]
    assert stored[0]["prev"] == "0" * 64
    assert [record["prev"] for record in stored[1:]] == [record["mac"] for record in stored[:-1]]
    assert all(record["mac"] == _recomputed_mac(record) for record in stored)
    assert list(log.records()) == stored
    assert log.verify() == VerifyReport(ok=True, records=5, first_bad=None, seq=None, problem=None)
    head = json.loads((tmp_path / "audit.head").read_text())
    assert head == {"seq": 5, "mac": stored[-1]["mac"]}


def test_the_stored_record_is_the_event_plus_seq_time_prev_and_mac(tmp_path):
    event = _event(subjects=["R10001"], columns=["birth_year"], duration_ms=1.5)
    record = AuditLog(tmp_path, KEY).append(event, now=T0 + timedelta(microseconds=7))

    assert set(record) == set(AuditEvent.model_fields) | {"seq", "time", "prev", "mac"}
    assert {name: record[name] for name in AuditEvent.model_fields} == event.model_dump()
    assert record["time"] == "2026-11-02T08:00:00.000007+00:00"
    assert json.loads(_log_lines(tmp_path)[0]) == record


def test_an_empty_directory_verifies_as_an_empty_log(tmp_path):
    assert verify_file(tmp_path / "never-written", KEY) == VerifyReport(True, 0, None, None, None)
    assert list(AuditLog(tmp_path / "never-written", KEY).records()) == []


def test_a_reopened_log_continues_the_chain(tmp_path):
    _filled(tmp_path, 3)
    record = AuditLog(tmp_path, KEY).append(_event())
    assert record["seq"] == 4
    assert verify_file(tmp_path, KEY).ok


def test_two_log_objects_on_one_directory_interleave_into_one_chain(tmp_path):
    first, second = AuditLog(tmp_path, KEY), AuditLog(tmp_path, KEY)
    seqs = [log.append(_event())["seq"] for log in (first, second, first, first, second)]
    assert seqs == [1, 2, 3, 4, 5]
    assert first.verify().ok


def test_a_log_written_with_another_key_does_not_verify(tmp_path):
    _filled(tmp_path, 2)
    report = verify_file(tmp_path, bytes(range(1, 33)))
    assert report == VerifyReport(False, 0, 1, 1, "record 1 was edited (its MAC does not match)")


def test_a_key_shorter_than_32_bytes_is_refused(tmp_path):
    with pytest.raises(AuditKeyError):
        AuditLog(tmp_path, b"short")


# Tampering


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rows", 9999),
        ("principal", "mallory"),
        ("decision", "deny"),
        ("subjects", ["R99999"]),
        ("seq", 40),
        ("mac", "0" * 64),
    ],
)
def test_an_edited_field_is_named_as_an_edit_of_that_record(tmp_path, field, value):
    _filled(tmp_path, 8)
    lines = _log_lines(tmp_path)
    record = json.loads(lines[3])
    record[field] = value
    lines[3] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    _write_log_lines(tmp_path, lines)

    assert verify_file(tmp_path, KEY) == VerifyReport(
        False, 3, 4, 4, "record 4 was edited (its MAC does not match)"
    )


def test_a_deleted_record_is_named_as_missing(tmp_path):
    _filled(tmp_path, 8)
    lines = _log_lines(tmp_path)
    del lines[3]
    _write_log_lines(tmp_path, lines)

    assert verify_file(tmp_path, KEY) == VerifyReport(
        False, 3, 4, 4, "record 4 is missing (sequence jumps from 3 to 5)"
    )


def test_several_deleted_records_are_named_as_a_range(tmp_path):
    _filled(tmp_path, 8)
    lines = _log_lines(tmp_path)
    del lines[2:5]
    _write_log_lines(tmp_path, lines)

    assert verify_file(tmp_path, KEY) == VerifyReport(
        False, 2, 3, 3, "records 3-5 are missing (sequence jumps from 2 to 6)"
    )


@pytest.mark.parametrize(("first", "second"), [(3, 4), (3, 7), (1, 8)])
def test_swapped_records_are_named_at_the_first_out_of_order_line(tmp_path, first, second):
    _filled(tmp_path, 8)
    lines = _log_lines(tmp_path)
    lines[first - 1], lines[second - 1] = lines[second - 1], lines[first - 1]
    _write_log_lines(tmp_path, lines)

    assert verify_file(tmp_path, KEY) == VerifyReport(
        False, first - 1, first, first, f"records are out of order at line {first}"
    )


def test_a_duplicated_earlier_record_is_out_of_order(tmp_path):
    _filled(tmp_path, 5)
    lines = _log_lines(tmp_path)
    lines.insert(3, lines[1])
    _write_log_lines(tmp_path, lines)

    assert verify_file(tmp_path, KEY).problem == "records are out of order at line 4"


def test_records_cut_from_the_end_are_caught_by_the_head_anchor(tmp_path):
    _filled(tmp_path, 10)
    _write_log_lines(tmp_path, _log_lines(tmp_path)[:8])

    assert verify_file(tmp_path, KEY) == VerifyReport(
        False,
        8,
        9,
        9,
        "the log ends at record 8 but the head anchor says 10: records 9-10 are missing",
    )


def test_an_emptied_log_is_caught_by_the_head_anchor(tmp_path):
    _filled(tmp_path, 2)
    (tmp_path / "audit.ndjson").unlink()

    assert verify_file(tmp_path, KEY).problem == (
        "the log ends at record 0 but the head anchor says 2: records 1-2 are missing"
    )


@pytest.mark.parametrize(
    "garbage",
    [b"not json\n", b"{}\n", b"[1, 2]\n", b"\n", b"[" * 100_000 + b"\n", b"\xff\xfe\n"],
    ids=["text", "empty-object", "array", "blank", "deeply-nested", "not-utf8"],
)
def test_a_garbage_line_is_named_by_its_line_number(tmp_path, garbage):
    _filled(tmp_path, 6)
    lines = _log_lines(tmp_path)
    lines.insert(4, garbage)
    _write_log_lines(tmp_path, lines)

    assert verify_file(tmp_path, KEY) == VerifyReport(
        False, 4, 5, 5, "line 5 is not a valid audit record"
    )


def test_a_torn_last_line_is_not_accepted(tmp_path):
    _filled(tmp_path, 3)
    with (tmp_path / "audit.ndjson").open("ab") as handle:
        handle.write(b'{"seq":4,"prev":"')

    assert verify_file(tmp_path, KEY) == VerifyReport(
        False, 3, 4, 4, "line 4 is not a valid audit record"
    )


def test_a_missing_head_anchor_is_reported(tmp_path):
    _filled(tmp_path, 3)
    (tmp_path / "audit.head").unlink()

    report = verify_file(tmp_path, KEY)
    assert not report.ok and report.records == 3
    assert report.problem.startswith("the head anchor audit.head is missing")


def test_an_invalid_head_anchor_is_reported_and_rewritten_by_the_next_append(tmp_path):
    log = _filled(tmp_path, 3)
    (tmp_path / "audit.head").write_bytes(b"")

    assert verify_file(tmp_path, KEY) == VerifyReport(
        False, 3, None, None, "the head anchor audit.head is invalid"
    )
    assert log.append(_event())["seq"] == 4
    assert verify_file(tmp_path, KEY).ok


def test_a_head_anchor_naming_another_last_record_is_reported_and_refused(tmp_path):
    _filled(tmp_path, 3)
    (tmp_path / "audit.head").write_text(json.dumps({"seq": 3, "mac": "f" * 64}))

    assert verify_file(tmp_path, KEY) == VerifyReport(
        False, 2, 3, 3, "record 3 does not match the head anchor"
    )
    with pytest.raises(AuditWriteError, match="head anchor"):
        AuditLog(tmp_path, KEY).append(_event())


def test_verifying_while_another_thread_appends_never_reports_a_problem(tmp_path):
    log = AuditLog(tmp_path, KEY)
    log.append(_event())

    def append_two_hundred() -> None:
        for _ in range(200):
            log.append(_event())

    writer = threading.Thread(target=append_two_hundred)
    writer.start()
    reports = []
    while writer.is_alive():
        reports.append(verify_file(tmp_path, KEY))
    writer.join()

    assert reports and [report for report in reports if not report.ok] == []
    assert verify_file(tmp_path, KEY).records == 201


def test_records_raises_on_a_bad_line_instead_of_skipping_it(tmp_path):
    log = _filled(tmp_path, 3)
    lines = _log_lines(tmp_path)
    lines.insert(1, b"garbage\n")
    _write_log_lines(tmp_path, lines)

    with pytest.raises(AuditError, match="line 2 of the audit log"):
        list(log.records())


def test_an_appender_refuses_to_continue_a_log_cut_below_its_head_anchor(tmp_path):
    log = _filled(tmp_path, 5)
    _write_log_lines(tmp_path, _log_lines(tmp_path)[:3])

    for appender in (log, AuditLog(tmp_path, KEY)):
        with pytest.raises(AuditWriteError, match="ends before its head anchor"):
            appender.append(_event())
    assert len(_log_lines(tmp_path)) == 3


def test_a_deleted_log_file_is_not_silently_restarted(tmp_path):
    log = _filled(tmp_path, 3)
    (tmp_path / "audit.ndjson").unlink()

    with pytest.raises(AuditWriteError):
        log.append(_event())


def test_an_appender_refuses_to_continue_after_an_edited_last_record(tmp_path):
    log = _filled(tmp_path, 3)
    # The running appender notices the edit by the file's ctime, which the kernel advances
    # once per clock tick (at most 10 ms); waiting longer makes the edit visible.
    time.sleep(0.05)
    lines = _log_lines(tmp_path)
    lines[-1] = lines[-1].replace(b'"rows":3', b'"rows":4')
    _write_log_lines(tmp_path, lines)

    for appender in (log, AuditLog(tmp_path, KEY)):
        with pytest.raises(AuditWriteError, match="torn or edited"):
            appender.append(_event())
    assert len(_log_lines(tmp_path)) == 3


# Concurrency


def test_eight_threads_appending_at_once_leave_one_contiguous_chain(tmp_path):
    log = AuditLog(tmp_path, KEY)
    failures: list[BaseException] = []

    def append_fifty(worker: int) -> None:
        try:
            for number in range(50):
                log.append(_event(correlation_id=f"thread-{worker}-{number}"))
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=append_fifty, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    records = list(log.records())
    assert [record["seq"] for record in records] == list(range(1, 401))
    assert len({record["correlation_id"] for record in records}) == 400
    assert log.verify() == VerifyReport(True, 400, None, None, None)


def _append_from_another_process(directory: str, worker: int, count: int) -> None:
    log = AuditLog(Path(directory), KEY)
    for number in range(count):
        log.append(_event(correlation_id=f"process-{worker}-{number}"))


def test_four_processes_appending_to_one_directory_leave_one_contiguous_chain(tmp_path):
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_append_from_another_process, args=(str(tmp_path), worker, 50))
        for worker in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)

    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    records = list(AuditLog(tmp_path, KEY).records())
    assert [record["seq"] for record in records] == list(range(1, 201))
    assert len({record["correlation_id"] for record in records}) == 200
    assert verify_file(tmp_path, KEY) == VerifyReport(True, 200, None, None, None)


# Failing closed


def test_an_unwritable_directory_refuses_the_append(tmp_path, request):
    if os.geteuid() == 0:
        # Root ignores mode bits, so the directory is made impossible instead: its parent
        # is a regular file.
        blocker = tmp_path / "blocker"
        blocker.write_text("a regular file")
        directory = blocker / "audit"
    else:
        directory = tmp_path / "audit"
        directory.mkdir()
        directory.chmod(0o500)
        request.addfinalizer(lambda: directory.chmod(0o700))

    with pytest.raises(AuditWriteError) as raised:
        AuditLog(directory, KEY).append(_event())
    assert isinstance(raised.value.__cause__, OSError)
    assert str(directory) in str(raised.value)


def test_a_log_directory_below_a_regular_file_refuses_the_append(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")

    with pytest.raises(AuditWriteError):
        AuditLog(blocker / "audit", KEY).append(_event())


def _no_space(*_args):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_at_fsync_refuses_the_append_and_leaves_no_trace(tmp_path, monkeypatch):
    log = _filled(tmp_path, 3)
    monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(AuditWriteError):
        log.append(_event(correlation_id="refused"))
    monkeypatch.undo()

    assert [record["correlation_id"] for record in log.records()] == ["req-1", "req-2", "req-3"]
    assert log.verify().ok
    assert log.append(_event())["seq"] == 4
    assert log.verify().ok


def _torn_writes(monkeypatch) -> None:
    """os.write takes half of the refused record, then reports a full disk."""
    real_write = os.write
    torn: set[int] = set()

    def half_then_full(fd, data):
        if fd in torn:
            _no_space()
        if b'"correlation_id":"refused"' in bytes(data):
            torn.add(fd)
            return real_write(fd, bytes(data)[: len(data) // 2])
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_full)


def test_a_full_disk_mid_write_is_rolled_back(tmp_path, monkeypatch):
    log = _filled(tmp_path, 3)
    _torn_writes(monkeypatch)
    with pytest.raises(AuditWriteError):
        log.append(_event(correlation_id="refused"))
    monkeypatch.undo()

    assert len(_log_lines(tmp_path)) == 3
    assert log.verify().ok
    assert log.append(_event())["seq"] == 4


def test_a_torn_record_that_cannot_be_rolled_back_is_never_accepted(tmp_path, monkeypatch):
    log = _filled(tmp_path, 3)
    _torn_writes(monkeypatch)
    monkeypatch.setattr(os, "ftruncate", _no_space)
    with pytest.raises(AuditWriteError):
        log.append(_event(correlation_id="refused"))
    monkeypatch.undo()

    assert verify_file(tmp_path, KEY) == VerifyReport(
        False, 3, 4, 4, "line 4 is not a valid audit record"
    )
    for appender in (log, AuditLog(tmp_path, KEY)):
        with pytest.raises(AuditWriteError, match="torn or edited"):
            appender.append(_event())


def test_an_event_that_cannot_be_encoded_is_refused_before_anything_is_written(tmp_path):
    log = _filled(tmp_path, 2)
    with pytest.raises(AuditWriteError, match="cannot be serialised"):
        log.append(_event(principal="lone \udc80 surrogate"))

    assert len(_log_lines(tmp_path)) == 2
    assert log.append(_event())["seq"] == 3


def test_a_naive_time_is_refused(tmp_path):
    with pytest.raises(ValueError, match="timezone-aware"):
        AuditLog(tmp_path, KEY).append(_event(), now=datetime(2026, 1, 1))


# The event model


@pytest.mark.parametrize(
    "overrides",
    [
        {"reason": "patient Smith has HIV"},
        {"risk_score": 101},
        {"rows": -1},
        {"decision": "maybe"},
        {"unexpected": "Smith"},
        {"duration_ms": float("nan")},
    ],
)
def test_an_event_is_strict_and_never_echoes_its_input(overrides):
    with pytest.raises(pydantic.ValidationError) as raised:
        _event(**overrides)
    assert "Smith" not in str(raised.value)


# Redaction


def _assert_only_identifiers_survive(arguments, redacted) -> None:
    text = json.dumps(redacted)
    for value in _strings(arguments):
        if not IDENTIFIER.fullmatch(value):
            assert value not in text


def test_redaction_keeps_names_and_limits_but_not_sql_injection():
    arguments = {
        "select": ["person_pseudonym", "birth_year", "x' OR '1'='1"],
        "filters": [
            {"column": "state", "op": "eq", "value": "MA'; DROP TABLE patients; --"},
            {"column": "birth_year; DELETE", "op": "gt", "value": 1950},
        ],
        "group_by": ["state"],
        "metrics": [{"column": "birth_year", "stat": "mean"}],
        "limit": 20,
        "descending": True,
        "note": "Robert'); DROP TABLE Students;--",
        "label": "Smith",
    }
    redacted = redact_arguments(arguments)

    assert redacted == {
        "select": ["person_pseudonym", "birth_year", "<redacted:str>"],
        "filters": [
            {"column": "state", "op": "<redacted:str>", "value": "<redacted:str>"},
            {"column": "<redacted:str>", "op": "<redacted:str>", "value": "<redacted:int>"},
        ],
        "group_by": ["state"],
        "metrics": [{"column": "birth_year", "stat": "mean"}],
        "limit": 20,
        "descending": True,
        "note": "<redacted:str>",
        "label": "<redacted:str>",
    }
    _assert_only_identifiers_survive(arguments, redacted)


def test_redaction_survives_a_dict_nested_ten_thousand_deep():
    arguments: dict = {"value": "bottom secret"}
    for _ in range(10_000):
        arguments = {"inner": arguments}
    redacted = redact_arguments(arguments)

    depth, node = 0, redacted
    while isinstance(node, dict):
        depth, node = depth + 1, node["inner"]
    assert (depth, node) == (8, "<redacted:deep>")


def test_redaction_of_a_three_megabyte_string_is_its_type():
    huge = "A" * 3_000_000 + "; DROP TABLE"
    assert redact_arguments({"select": huge, "value": huge}) == {
        "select": "<redacted:str>",
        "value": "<redacted:str>",
    }


def test_redaction_of_a_cyclic_dict_marks_the_cycle():
    arguments: dict = {"column": "state", "value": "Smith, John"}
    arguments["self"] = arguments
    arguments["items"] = [arguments, {"again": arguments}]

    assert redact_arguments(arguments) == {
        "column": "state",
        "value": "<redacted:str>",
        "self": "<redacted:cycle>",
        "items": ["<redacted:cycle>", {"again": "<redacted:cycle>"}],
    }


def test_redaction_of_shared_structure_that_would_explode_is_too_large():
    layer: list = ["leaf"] * 50
    for _ in range(7):
        layer = [layer] * 50
    assert redact_arguments({"data": layer}) == {"_redacted": "too_large"}


def test_redaction_replaces_keys_that_are_not_identifiers():
    arguments = {"名前": "太郎", "ok_key": 1, 7: "seven", "a b": "c", "trailing\n": "x"}
    redacted = redact_arguments(arguments)

    assert redacted == {"<key>": "<redacted:str>", "ok_key": "<redacted:int>"}
    _assert_only_identifiers_survive(arguments, redacted)


def test_redaction_cuts_long_lists_with_a_marker():
    redacted = redact_arguments({"select": [f"c{n}" for n in range(120)]})
    assert redacted["select"][:50] == [f"c{n}" for n in range(50)]
    assert redacted["select"][50:] == ["<truncated:70 more>"]


def test_redaction_keeps_only_bools_small_ints_and_identifiers_under_kept_keys():
    redacted = redact_arguments(
        {
            "limit": 10**30,
            "stat": 2.5,
            "column": None,
            "select": ["name\n", "ok", b"bytes", {"value": "Smith"}],
        }
    )
    assert redacted == {
        "limit": "<redacted:int>",
        "stat": "<redacted:float>",
        "column": "<redacted:null>",
        "select": ["<redacted:str>", "ok", "<redacted:bytes>", {"value": "<redacted:str>"}],
    }


def test_redaction_that_exceeds_max_bytes_is_too_large():
    arguments = {f"field_{n}": n for n in range(400)}
    assert redact_arguments(arguments) == {"_redacted": "too_large"}
    assert redact_arguments({"limit": 5}, max_bytes=8) == {"_redacted": "too_large"}


def test_redaction_of_input_that_is_not_a_dict_names_only_its_type():
    assert redact_arguments(["Smith"]) == {"_redacted": "list"}
    assert redact_arguments("SELECT * FROM patients") == {"_redacted": "str"}
    assert redact_arguments(object()) == {"_redacted": "object"}
    assert redact_arguments(None) is None


def test_redaction_never_raises_on_a_mapping_that_fails_while_read():
    class Exploding(dict):
        def items(self):
            raise RuntimeError("Smith")

    assert redact_arguments(Exploding(a=1)) == {"_redacted": "unreadable"}


# Keys


def test_the_key_from_the_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(AUDIT_KEY_ENV, "ab" * 32)
    assert load_audit_key(tmp_path / "keys" / "audit.json") == bytes.fromhex("ab" * 32)
    assert not (tmp_path / "keys").exists()


def test_a_missing_key_file_is_created_with_mode_0600_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv(AUDIT_KEY_ENV, raising=False)
    key_file = tmp_path / "restricted" / "audit_key.json"

    key = load_audit_key(key_file)
    assert len(key) == 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert json.loads(key_file.read_text()) == {"audit": key.hex()}
    assert load_audit_key(key_file) == key
    assert sorted(path.name for path in key_file.parent.iterdir()) == ["audit_key.json"]


@pytest.mark.parametrize("value", ["not-hex-at-all", "abcd", "zz" * 32])
def test_a_malformed_key_in_the_environment_is_refused_without_echoing_it(
    tmp_path, monkeypatch, value
):
    monkeypatch.setenv(AUDIT_KEY_ENV, value)
    with pytest.raises(AuditKeyError) as raised:
        load_audit_key(tmp_path / "audit.json")
    assert value not in str(raised.value)


@pytest.mark.parametrize(
    "content",
    ["not json", '{"audit": 5}', '{"other": "' + "ab" * 32 + '"}', '{"audit": "abcd"}', "[]"],
)
def test_a_malformed_key_file_is_refused(tmp_path, monkeypatch, content):
    monkeypatch.delenv(AUDIT_KEY_ENV, raising=False)
    key_file = tmp_path / "audit.json"
    key_file.write_text(content)
    with pytest.raises(AuditKeyError):
        load_audit_key(key_file)


# Search, disclosures, alerts


@pytest.fixture
def history(tmp_path) -> AuditLog:
    log = AuditLog(tmp_path, KEY)
    events = [
        _event(subjects=["P1", "P2"], rows=2),
        _event(
            principal="bob",
            dataset="research/observations",
            decision="deny",
            reason="insufficient_scope",
            subjects=["P1"],
        ),
        _event(
            dataset="research/observations",
            subjects=["P2"],
            risk_score=80,
            risk_reasons=["differencing_suspected"],
        ),
        _event(kind="security_alert", principal="bob", decision="deny", reason="rate_limited"),
        _event(
            principal="carol",
            role="clinician",
            purpose="treatment",
            protocol=None,
            action="resources/read",
            subjects=["P1"],
            break_glass={"patient": "h:9f2c", "reason": "emergency_treatment"},
        ),
    ]
    for hour, event in enumerate(events):
        log.append(event, now=T0 + timedelta(hours=hour))
    return log


def _seqs(records: list[dict]) -> list[int]:
    return [record["seq"] for record in records]


def test_search_filters_and_returns_newest_first(history):
    assert _seqs(history.search()) == [5, 4, 3, 2, 1]
    assert _seqs(history.search(principal="alice")) == [3, 1]
    assert _seqs(history.search(dataset="research/observations", decision="deny")) == [2]
    assert _seqs(history.search(action="resources/read")) == [5]
    assert _seqs(history.search(kind="security_alert")) == [4]
    assert _seqs(history.search(min_risk=50)) == [3]
    assert _seqs(history.search(subject="P1")) == [5, 2, 1]
    assert _seqs(history.search(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3))) == [
        3,
        2,
    ]
    assert _seqs(history.search(limit=2)) == [5, 4]


def test_search_refuses_naive_times_and_empty_limits(history):
    with pytest.raises(ValueError, match="timezone-aware"):
        history.search(since=datetime(2026, 11, 2))
    with pytest.raises(ValueError, match="limit"):
        history.search(limit=0)


def test_disclosures_account_for_allowed_records_of_one_person(history):
    disclosures = history.disclosures("P1")

    assert _seqs(disclosures) == [5, 1]
    assert disclosures[0] == {
        "seq": 5,
        "time": "2026-11-02T12:00:00.000000+00:00",
        "correlation_id": "req-1",
        "principal": "carol",
        "role": "clinician",
        "purpose": "treatment",
        "protocol": None,
        "action": "resources/read",
        "dataset": "research/patients",
        "break_glass": {"patient": "h:9f2c", "reason": "emergency_treatment"},
    }
    assert history.disclosures("P404") == []


def test_alerts_are_risky_records_and_security_alerts_newest_first(history):
    assert _seqs(history.alerts(min_risk=50)) == [4, 3]
    assert _seqs(history.alerts(min_risk=50, since=T0 + timedelta(hours=2, minutes=30))) == [4]
    assert _seqs(history.alerts(min_risk=101)) == [4]


# FHIR export


def _walk_values(value):
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_values(item)


def test_the_fhir_export_writes_one_r4_audit_event_per_record(history, tmp_path):
    out = tmp_path / "export" / "audit_events.ndjson"
    out.parent.mkdir()
    assert history.export_fhir(out) == 5
    assert out.stat().st_mode & 0o777 == 0o600

    events = [json.loads(line) for line in out.read_text().splitlines()]
    stored = list(history.records())
    assert len(events) == 5
    for event, record in zip(events, stored, strict=True):
        assert event["resourceType"] == "AuditEvent"
        assert event["id"] == f"req-1-{record['seq']}"
        assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", event["id"])
        assert event["type"] == {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        }
        assert event["subtype"] == [{"system": "urn:biofed:action", "code": record["action"]}]
        assert event["recorded"] == record["time"]
        assert datetime.fromisoformat(event["recorded"]).tzinfo is not None
        assert event["outcomeDesc"] == record["reason"]
        assert [agent["requestor"] for agent in event["agent"]] == [True]
        assert event["agent"][0]["who"] == {"identifier": {"value": record["principal"]}}
        assert event["agent"][0]["role"] == [{"text": record["role"]}]
        assert event["source"]["observer"] == {"display": "biofed-catalog"}
        assert event["entity"][0]["what"]["identifier"]["value"] == record["dataset"]
        chain = {part["url"]: part for part in event["extension"][0]["extension"]}
        assert event["extension"][0]["url"] == "urn:biofed:audit"
        assert chain["seq"]["valueInteger"] == record["seq"]
        assert chain["mac"]["valueString"] == record["mac"]
        assert chain["risk_score"]["valueInteger"] == record["risk_score"]
        assert chain["rows"]["valueInteger"] == record["rows"]
        assert chain["correlation_id"]["valueString"] == record["correlation_id"]
        assert None not in _walk_values(event) and [] not in _walk_values(event)

    assert [event["outcome"] for event in events] == ["0", "4", "0", "4", "0"]
    assert [event["action"] for event in events] == ["E", "E", "E", "E", "R"]
    assert events[0]["purposeOfEvent"][0]["coding"][0]["code"] == "HRESCH"
    assert events[0]["agent"][0]["policy"] == ["urn:biofed:protocol:BIOFED-DEMO-001"]
    codes = [purpose["coding"][0]["code"] for purpose in events[4]["purposeOfEvent"]]
    assert codes == ["TREAT", "BTG"]
    persons = [entity["what"]["identifier"] for entity in events[4]["entity"][1:]]
    assert persons == [
        {"system": "urn:biofed:break-glass-patient", "value": "h:9f2c"},
        {"system": "urn:biofed:person-pseudonym", "value": "P1"},
    ]


def test_the_fhir_export_carries_redacted_arguments_as_a_query_entity(tmp_path):
    log = AuditLog(tmp_path, KEY)
    arguments = redact_arguments({"select": ["state"], "value": "Smith"})
    log.append(_event(correlation_id="a b/c", arguments=arguments))
    log.export_fhir(tmp_path / "out.ndjson")

    event = json.loads((tmp_path / "out.ndjson").read_text())
    assert event["id"] == "a-b-c-1"
    query = next(entity for entity in event["entity"] if "query" in entity)
    assert json.loads(base64.b64decode(query["query"])) == arguments


def test_a_fhir_export_of_a_damaged_log_fails_and_leaves_no_file(history, tmp_path):
    lines = _log_lines(history.directory)
    lines.insert(2, b"garbage\n")
    _write_log_lines(history.directory, lines)
    out = tmp_path / "out.ndjson"

    with pytest.raises(AuditError, match="line 3"):
        history.export_fhir(out)
    assert not out.exists()
    assert not (tmp_path / "out.ndjson.tmp").exists()
