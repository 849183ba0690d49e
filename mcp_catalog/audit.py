"""The access audit log: one HMAC-chained record per request, durable before data leaves.

``audit.ndjson`` holds one record per line: the :class:`AuditEvent` the server supplied plus
``seq`` (1-based, contiguous), ``time`` (UTC), ``prev`` (the MAC of the record before, or 64
zeros) and ``mac``, an HMAC-SHA256 over the canonical JSON of everything else. Editing,
deleting, reordering or inserting a line breaks the chain at that line. ``audit.head``
remembers the last record, so records cut off the end are caught as well.

The server fails closed: :meth:`AuditLog.append` raises :class:`AuditWriteError` when a
record cannot be made durable, and the server must then refuse to answer.

What the chain cannot prove: whoever holds the key can rewrite the whole log, and whoever can
write the directory can roll both files back to an earlier consistent state. Copying
``audit.head`` to write-once storage closes the second gap.
"""

import base64
import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

AUDIT_KEY_ENV = "BIOFED_AUDIT_KEY"
_LOG_NAME = "audit.ndjson"
_HEAD_NAME = "audit.head"
_GENESIS_MAC = "0" * 64

_MIN_KEY_BYTES = 32
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TAIL_CHUNK = 8192
_HEAD_WIDTH = 128


class AuditError(Exception):
    """The audit log cannot be used; the message says how to get unstuck."""


class AuditWriteError(AuditError):
    """A record could not be made durable: the caller must refuse to answer (fail closed)."""


class AuditKeyError(AuditError):
    """The audit key is missing or malformed."""


def _decode_key(source: str, text: object) -> bytes:
    if not isinstance(text, str):
        raise AuditKeyError(f"{source} must be a string of 64 or more hexadecimal characters")
    try:
        key = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise AuditKeyError(f"{source} must be 64 or more hexadecimal characters") from exc
    if len(key) < _MIN_KEY_BYTES:
        raise AuditKeyError(f"{source} must be at least 32 bytes (64 hexadecimal characters)")
    return key


def _create_key_file(key_file: Path) -> None:
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = key_file.with_name(f".{key_file.name}.{secrets.token_hex(8)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"audit": secrets.token_hex(_MIN_KEY_BYTES)}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        # A hard link appears complete and fails when another process won the race, so no
        # reader ever sees a half-written key file and the first key created is the one kept.
        with contextlib.suppress(FileExistsError):
            os.link(staging, key_file)
    finally:
        staging.unlink(missing_ok=True)


def load_audit_key(key_file: Path) -> bytes:
    """Load the key that chains the audit log, creating a key file with a random key if needed.

    ``BIOFED_AUDIT_KEY`` (64 or more hexadecimal characters) wins; otherwise ``key_file``
    holds ``{"audit": "<hex>"}``. A missing key file is created with mode 0600 and a random
    32-byte key.

    Args:
        key_file: where the key lives when the environment does not set it.

    Returns:
        The key (at least 32 bytes).

    Raises:
        AuditKeyError: when the key is malformed, or the key file cannot be read or created.
    """
    from_env = os.environ.get(AUDIT_KEY_ENV)
    if from_env:
        return _decode_key(AUDIT_KEY_ENV, from_env)
    try:
        if not key_file.exists():
            _create_key_file(key_file)
        stored = json.loads(key_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AuditKeyError(
            f"cannot read or create the audit key file {key_file}; check that its directory "
            f"is writable, or set {AUDIT_KEY_ENV}"
        ) from exc
    except ValueError as exc:
        raise AuditKeyError(
            f'the audit key file {key_file} is not JSON like {{"audit": "<64 hex characters>"}}'
        ) from exc
    if not isinstance(stored, dict) or "audit" not in stored:
        raise AuditKeyError(
            f'the audit key file {key_file} is not JSON like {{"audit": "<64 hex characters>"}}'
        )
    return _decode_key(f"the audit key in {key_file}", stored["audit"])


class AuditEvent(BaseModel):
    """What the server knows about one request or refusal; the log adds seq, time and MACs."""

    # Inputs stay out of validation messages: a caller that passes raw values by mistake
    # must not see them echoed into logs.
    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, allow_inf_nan=False
    )

    kind: Literal["request", "http_refusal", "break_glass_review", "security_alert"] = "request"
    correlation_id: str
    transport: Literal["stdio", "http"]
    principal: str | None = None
    """The token ``sub`` or the configured principal."""
    client_id: str | None = None
    role: str | None = None
    purpose: str | None = None
    protocol: str | None = None
    """The research protocol id when the purpose is research."""
    action: str
    """Tool name, ``resources/read``, JSON-RPC method or HTTP ``POST /mcp``."""
    dataset: str | None = None
    arguments: dict[str, Any] | None = None
    """Already passed through :func:`redact_arguments`."""
    decision: Literal["allow", "deny", "error"]
    reason: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    """A snake_case reason code (``ok``, ``invalid_token``, ``risk_threshold``, ...)."""
    http_status: int | None = Field(default=None, ge=100, le=599)
    rows: int = Field(default=0, ge=0)
    columns: list[str] = []
    masked_columns: list[str] = []
    result_sha256: str | None = None
    subjects: list[str] = []
    """Pseudonyms of the persons whose rows were returned (accounting of disclosures)."""
    risk_score: int = Field(default=0, ge=0, le=100)
    risk_reasons: list[str] = []
    break_glass: dict[str, Any] | None = None
    """``{"patient": <hashed ref>, "reason": <code>, "expires": <iso>}`` under break-glass."""
    cached: bool = False
    delta_version: int | None = None
    duration_ms: float | None = None
    detail: str | None = None
    """A fixed, value-free sentence (for example the text of a break-glass review)."""


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_KEPT_KEYS = frozenset(
    {"select", "group_by", "column", "metrics", "measures", "stat", "descending", "limit"}
)
_MAX_ITEMS = 50
_MAX_DEPTH = 8
_INT64 = 2**63
_TYPE_NAMES: dict[type, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    type(None): "null",
    list: "list",
    tuple: "list",
    dict: "dict",
    bytes: "bytes",
}


def _is_identifier(value: object) -> bool:
    # Exact types only: a str subclass could render as something other than what was matched.
    return type(value) is str and _IDENTIFIER.fullmatch(value) is not None


def _keepable(value: object) -> bool:
    if type(value) is bool:
        return True
    if type(value) is int:
        return -_INT64 <= value < _INT64
    return _is_identifier(value)


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), "object")


class _TooLarge(Exception):
    pass


class _Redactor:
    """Walks arguments once, with a node budget so shared or cyclic structure cannot explode."""

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._path: set[int] = set()

    def _spend(self) -> None:
        # Every output node costs at least one byte of JSON, so more nodes than max_bytes
        # can only end as too_large; stopping here bounds the work on hostile input.
        self._budget -= 1
        if self._budget < 0:
            raise _TooLarge

    def mapping(self, value: dict, depth: int) -> dict[str, Any] | str:
        if depth > _MAX_DEPTH:
            return "<redacted:deep>"
        if id(value) in self._path:
            return "<redacted:cycle>"
        self._path.add(id(value))
        redacted: dict[str, Any] = {}
        for key, item in value.items():
            name = key if _is_identifier(key) else "<key>"
            redacted[name] = self.value(item, depth + 1, keep=name in _KEPT_KEYS)
        self._path.discard(id(value))
        return redacted

    def sequence(self, value: list | tuple, depth: int, keep: bool) -> list[Any] | str:
        if depth > _MAX_DEPTH:
            return "<redacted:deep>"
        if id(value) in self._path:
            return "<redacted:cycle>"
        self._path.add(id(value))
        redacted = [self.value(item, depth + 1, keep) for item in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            redacted.append(f"<truncated:{len(value) - _MAX_ITEMS} more>")
        self._path.discard(id(value))
        return redacted

    def value(self, value: Any, depth: int, keep: bool) -> Any:
        self._spend()
        if isinstance(value, dict):
            return self.mapping(value, depth)
        if isinstance(value, list | tuple):
            return self.sequence(value, depth, keep)
        if keep and _keepable(value):
            return value
        return f"<redacted:{_type_name(value)}>"


def redact_arguments(arguments: Any, *, max_bytes: int = 4096) -> dict[str, Any] | None:
    """Tool arguments with every value redacted, keeping only their structure and names.

    Dict keys are kept when they are identifiers (``[A-Za-z_][A-Za-z0-9_]{0,63}``) and become
    ``"<key>"`` otherwise. Under the keys ``select``, ``group_by``, ``column``, ``metrics``,
    ``measures``, ``stat``, ``descending`` and ``limit`` (and in lists beneath them), bools,
    64-bit ints and identifier strings are kept; a dict beneath them decides key by key. Every
    other leaf becomes ``"<redacted:str>"`` (``int``, ``float``, ``bool``, ``null``, ...), lists
    are cut after 50 items with a ``"<truncated:N more>"`` marker, containers nested deeper than
    8 levels become ``"<redacted:deep>"`` and cycles ``"<redacted:cycle>"``.

    Args:
        arguments: the arguments exactly as the client sent them; anything at all.
        max_bytes: the most compact JSON the result may take.

    Returns:
        The redacted dict; ``{"_redacted": "too_large"}`` when it would exceed ``max_bytes``;
        ``{"_redacted": "<type>"}`` for input that is not a dict (``None`` for ``None``);
        ``{"_redacted": "unreadable"}`` when the input fails while being read.

    Raises:
        Nothing: hostile input (cyclic, deep, huge, not JSON) is redacted, never raised.
    """
    if arguments is None:
        return None
    try:
        if not isinstance(arguments, dict):
            return {"_redacted": _type_name(arguments)}
        redacted = _Redactor(max_bytes).mapping(arguments, 1)
        if len(json.dumps(redacted, separators=(",", ":"))) > max_bytes:
            return {"_redacted": "too_large"}
        return redacted
    except _TooLarge:
        return {"_redacted": "too_large"}
    except Exception:
        # A dict subclass can raise from items(), or a dict can change while being read; the
        # audit record must still be written, so the arguments are recorded as unreadable.
        return {"_redacted": "unreadable"}


@dataclass(frozen=True)
class VerifyReport:
    """The result of checking the chain and the head anchor."""

    ok: bool
    records: int
    """Records that verified before the first problem (all of them when ok)."""
    first_bad: int | None
    """1-based line number of the first bad or missing record."""
    seq: int | None
    """The seq expected at that point."""
    problem: str | None
    """A fixed sentence naming what is wrong and where."""


def _canonical(record: dict[str, Any], *, strict: bool = False) -> str:
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=not strict
    )


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    """A record from one line as written (with its newline), or None when it is not one."""
    if not raw.endswith(b"\n"):
        return None
    try:
        record = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    seq = record.get("seq")
    if type(seq) is not int or seq < 1 or not isinstance(record.get("time"), str):
        return None
    for link in ("prev", "mac"):
        if not isinstance(record.get(link), str) or not _HEX64.fullmatch(record[link]):
            return None
    return record


def _aware(moment: datetime | None, name: str) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (for example datetime.now(UTC))")
    return moment


class _InvalidHead(Exception):
    pass


class AuditLog:
    """An append-only, HMAC-chained audit log in one directory, shared by threads and processes.

    Appends are serialised by a thread lock and an exclusive ``flock`` on the log file, so
    several server processes may write one directory. Each process keeps the last seq and MAC
    in memory and rereads the tail only when the file size shows someone else wrote.
    """

    def __init__(self, directory: Path, key: bytes) -> None:
        """Args:
            directory: holds ``audit.ndjson`` and ``audit.head``; created on first append.
            key: the HMAC key, at least 32 bytes (see :func:`load_audit_key`).

        Raises:
            AuditKeyError: when the key is shorter than 32 bytes.
        """
        if not isinstance(key, bytes) or len(key) < _MIN_KEY_BYTES:
            raise AuditKeyError("the audit key must be at least 32 bytes")
        self.directory = Path(directory)
        self.log_path = self.directory / _LOG_NAME
        self.head_path = self.directory / _HEAD_NAME
        self._key = key
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._fd_pid = 0
        self._fd_identity: tuple[int, int] | None = None
        self._seen: tuple[int, int] | None = None
        self._seq = 0
        self._mac = _GENESIS_MAC

    def _write_error(self) -> AuditWriteError:
        return AuditWriteError(
            f"cannot write the audit log in {self.directory}; refusing to answer until the "
            "directory is writable and the log verifies"
        )

    def _mac_of(self, record: dict[str, Any]) -> str:
        unsealed = {name: value for name, value in record.items() if name != "mac"}
        return hmac.new(self._key, _canonical(unsealed).encode(), hashlib.sha256).hexdigest()

    def _mac_matches(self, record: dict[str, Any]) -> bool:
        return hmac.compare_digest(self._mac_of(record), record["mac"])

    def append(self, event: AuditEvent, *, now: datetime | None = None) -> dict[str, Any]:
        """Append one record and fsync it before returning.

        Args:
            event: what happened.
            now: the record time (timezone-aware); the current time when omitted.

        Returns:
            The stored record: the event fields plus ``seq``, ``time``, ``prev`` and ``mac``.

        Raises:
            AuditWriteError: when the record cannot be made durable (any OS error: disk full,
                permissions, lock), the event cannot be serialised, or the log on disk cannot
                be continued (a torn or edited last record, or records cut below the head
                anchor). The caller must refuse to answer.
            ValueError: when ``now`` is naive.
        """
        moment = _aware(now, "now") or datetime.now(UTC)
        try:
            body = event.model_dump(mode="json")
        except ValueError as exc:
            raise AuditWriteError("the audit event cannot be serialised as JSON") from exc
        body["time"] = moment.astimezone(UTC).isoformat(timespec="microseconds")
        with self._lock:
            try:
                return self._append_locked(body)
            except OSError as exc:
                raise self._write_error() from exc

    def _append_locked(self, body: dict[str, Any]) -> dict[str, Any]:
        fd = self._lock_current_file()
        try:
            before = os.fstat(fd)
            size = before.st_size
            # Size and ctime as of this process's last write: when either moved, another
            # process appended or someone touched the file, so the tail is read again.
            if (size, before.st_ctime_ns) != self._seen:
                self._seq, self._mac = self._continue_from(fd, size)
            record = {**body, "seq": self._seq + 1, "prev": self._mac}
            try:
                record["mac"] = self._mac_of(record)
                line = (_canonical(record, strict=True) + "\n").encode()
            except ValueError as exc:
                raise AuditWriteError("the audit event cannot be serialised as JSON") from exc
            self._write_durably(fd, line, size)
            after = os.fstat(fd)
            self._seq, self._mac = record["seq"], record["mac"]
            self._seen = (after.st_size, after.st_ctime_ns)
            self._write_head()
            return record
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock_current_file(self) -> int:
        """The log's descriptor, exclusively locked, reopened when the file was replaced."""
        for _ in range(3):
            fd = self._fd
            if fd is None or self._fd_pid != os.getpid():
                # A descriptor inherited across fork shares its lock with the parent, so a
                # child process drops its copy and opens its own.
                self._close()
                fd = self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                on_disk = os.stat(self.log_path)
                current = (on_disk.st_dev, on_disk.st_ino) == self._fd_identity
            except OSError:
                current = False
            if current:
                return fd
            fcntl.flock(fd, fcntl.LOCK_UN)
            self._close()
        raise AuditWriteError(
            f"the audit log in {self.directory} keeps being replaced; stop whatever moves it"
        )

    def _open(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(self.log_path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
        except FileExistsError:
            fd = os.open(self.log_path, flags)
            created = False
        try:
            if created:
                # The new directory entry must survive a crash as well as the record in it.
                dir_fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            stat = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        self._fd, self._fd_pid = fd, os.getpid()
        self._fd_identity = (stat.st_dev, stat.st_ino)
        self._seen = None
        return fd

    def _close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._fd_identity, self._seen = None, None, None

    def _continue_from(self, fd: int, size: int) -> tuple[int, str]:
        """The seq and MAC to chain from, read from the tail and checked against the head."""
        seq, mac = 0, _GENESIS_MAC
        if size:
            record = _parse_line(_last_line(fd, size))
            if record is None or not self._mac_matches(record):
                raise AuditWriteError(
                    f"the last record of the audit log in {self.directory} is torn or edited; "
                    "run verification and move the damaged log aside before serving"
                )
            seq, mac = record["seq"], record["mac"]
        try:
            head = self._read_head()
        except _InvalidHead:
            # A crash soon after the head file was created can leave it empty (it is never
            # fsynced); this append rewrites it, and verify() reports it until then.
            head = None
        if head is not None and (head[0] > seq or (head[0] == seq and head[1] != mac)):
            raise AuditWriteError(
                f"the audit log in {self.directory} ends before its head anchor: records were "
                "removed; run verification before serving"
            )
        return seq, mac

    def _write_durably(self, fd: int, line: bytes, size: int) -> None:
        try:
            written = 0
            while written < len(line):
                count = os.write(fd, line[written:])
                if count == 0:
                    raise OSError(errno.EIO, "the audit log accepted no bytes")
                written += count
            os.fsync(fd)
        except OSError:
            # The caller refuses to answer, so no trace of this record may remain: a torn
            # line would also stop every later append.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            self._seen = None
            raise

    def _write_head(self) -> None:
        # Overwritten in place rather than by write-temp + os.replace: on ext4 the rename
        # alone costs about a millisecond, as much as the whole rest of an append. In-place is
        # as safe here: every writer holds the exclusive lock and verify() reads under the
        # shared one, so no reader sees a half-written head; the fixed width means no
        # truncation; and a crash leaves the old or the new head, both at or behind the
        # fsynced log (a lagging head is tolerated, only one running ahead is an alarm).
        payload = json.dumps({"seq": self._seq, "mac": self._mac}).encode()
        payload = payload.ljust(_HEAD_WIDTH - 1) + b"\n"
        fd = os.open(self.head_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.pwrite(fd, payload, 0) != len(payload):
                raise OSError(errno.EIO, "the head anchor accepted a partial write")
            if os.fstat(fd).st_size != len(payload):
                os.ftruncate(fd, len(payload))
        finally:
            os.close(fd)

    def _read_head(self) -> tuple[int, str] | None:
        """The anchored (seq, mac); None when there is no head file."""
        try:
            text = self.head_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            head = json.loads(text.decode("utf-8"))
        except ValueError as exc:
            raise _InvalidHead from exc
        if (
            not isinstance(head, dict)
            or type(head.get("seq")) is not int
            or head["seq"] < 1
            or not isinstance(head.get("mac"), str)
            or not _HEX64.fullmatch(head["mac"])
        ):
            raise _InvalidHead
        return head["seq"], head["mac"]

    def _head_state(self) -> tuple[int, str] | Literal["missing", "invalid"]:
        try:
            head = self._read_head()
        except _InvalidHead:
            return "invalid"
        return "missing" if head is None else head

    def _open_snapshot(
        self,
    ) -> tuple[BinaryIO | None, int, tuple[int, str] | Literal["missing", "invalid"]]:
        """The log opened for reading, its size and the head, taken while no append runs.

        The shared lock makes the size and the head belong to the same moment, so a record
        appended during a long read is neither half-read nor mistaken for missing.
        """
        try:
            handle = open(self.log_path, "rb")  # noqa: SIM115 - returned to the caller open
        except FileNotFoundError:
            return None, 0, self._head_state()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            try:
                size = os.fstat(handle.fileno()).st_size
                head = self._head_state()
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        except BaseException:
            handle.close()
            raise
        return handle, size, head

    def _read_error(self) -> AuditError:
        return AuditError(
            f"cannot read the audit log in {self.directory}; check that it exists and is readable"
        )

    def verify(self) -> VerifyReport:
        """Check every MAC, the sequence, the links between records and the head anchor.

        Returns:
            A report that names the first problem by line and expected seq.

        Raises:
            AuditError: when the log cannot be read at all.
        """
        try:
            handle, size, head = self._open_snapshot()
            if handle is None:
                return self._check_chain(iter(()), head)
            with handle:
                return self._check_chain(_lines(handle, size), head)
        except OSError as exc:
            raise self._read_error() from exc

    def _check_chain(
        self, lines: Iterator[bytes], head: tuple[int, str] | Literal["missing", "invalid"]
    ) -> VerifyReport:
        # In a sound prefix line n holds record n, so one number names both.
        expected, prev_mac = 1, _GENESIS_MAC
        for raw in lines:
            record = _parse_line(raw)
            if record is None:
                return _broken_at(expected, f"line {expected} is not a valid audit record")
            if not self._mac_matches(record):
                edited = f"record {expected} was edited (its MAC does not match)"
                return _broken_at(expected, edited)
            seq = record["seq"]
            if seq < expected or (seq > expected and _holds_seq_in(lines, expected, seq)):
                return _broken_at(expected, f"records are out of order at line {expected}")
            if seq > expected:
                return _broken_at(expected, _missing_sentence(expected, seq))
            if record["prev"] != prev_mac:
                return _broken_at(
                    expected, f"record {seq} is not linked to the record before it (prev differs)"
                )
            expected, prev_mac = seq + 1, record["mac"]
        last = expected - 1
        if head == "invalid":
            return VerifyReport(False, last, None, None, "the head anchor audit.head is invalid")
        if head == "missing":
            if last == 0:
                return VerifyReport(True, 0, None, None, None)
            return VerifyReport(
                False,
                last,
                None,
                None,
                "the head anchor audit.head is missing, so records cut from the end would "
                "go unnoticed",
            )
        head_seq, head_mac = head
        if head_seq > last:
            lost = (
                f"record {head_seq} is missing"
                if head_seq == last + 1
                else f"records {last + 1}-{head_seq} are missing"
            )
            return VerifyReport(
                False,
                last,
                last + 1,
                last + 1,
                f"the log ends at record {last} but the head anchor says {head_seq}: {lost}",
            )
        if head_seq == last and not hmac.compare_digest(head_mac, prev_mac):
            return VerifyReport(
                False, last - 1, last, last, f"record {last} does not match the head anchor"
            )
        return VerifyReport(True, last, None, None, None)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record in file order; MACs are not checked here (see :meth:`verify`).

        Returns:
            An iterator of parsed records.

        Raises:
            AuditError: when the log cannot be read or a line is not a record; no line is
                skipped silently.
        """
        try:
            handle, size, _ = self._open_snapshot()
        except OSError as exc:
            raise self._read_error() from exc
        if handle is None:
            return
        with handle:
            line_number = 0
            try:
                for raw in _lines(handle, size):
                    line_number += 1
                    record = _parse_line(raw)
                    if record is None:
                        raise AuditError(
                            f"line {line_number} of the audit log in {self.directory} is not a "
                            "valid audit record; run verification to locate the damage"
                        )
                    yield record
            except OSError as exc:
                raise self._read_error() from exc

    def _newest(
        self,
        wanted: Callable[[dict[str, Any]], bool],
        limit: int,
        shape: Callable[[dict[str, Any]], dict[str, Any]] = dict,
    ) -> list[dict[str, Any]]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        kept: deque[dict[str, Any]] = deque(maxlen=limit)
        for record in self.records():
            if wanted(record):
                kept.append(record)
        return [shape(record) for record in reversed(kept)]

    def search(
        self,
        *,
        principal: str | None = None,
        dataset: str | None = None,
        action: str | None = None,
        decision: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        min_risk: int | None = None,
        subject: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Records matching every given filter, newest first.

        Args:
            principal: exact principal.
            dataset: exact dataset.
            action: exact action (tool name, ``resources/read``, ...).
            decision: ``allow``, ``deny`` or ``error``.
            kind: ``request``, ``http_refusal``, ``break_glass_review`` or ``security_alert``.
            since: records at or after this time (timezone-aware).
            until: records before this time (timezone-aware).
            min_risk: records whose risk score is at least this.
            subject: records that disclosed this person pseudonym.
            limit: the most records returned (at least 1).

        Returns:
            The newest matching records, at most ``limit``.

        Raises:
            AuditError: when the log cannot be read or a line is not a record.
            ValueError: when a time is naive or the limit is below 1.
        """
        exact = {
            "principal": principal,
            "dataset": dataset,
            "action": action,
            "decision": decision,
            "kind": kind,
        }
        wanted_fields = {name: value for name, value in exact.items() if value is not None}
        start, end = _aware(since, "since"), _aware(until, "until")

        def wanted(record: dict[str, Any]) -> bool:
            if any(record.get(name) != value for name, value in wanted_fields.items()):
                return False
            if min_risk is not None and record.get("risk_score", 0) < min_risk:
                return False
            if subject is not None and subject not in record.get("subjects", ()):
                return False
            return _within(record, start, end)

        return self._newest(wanted, limit)

    def disclosures(self, subject: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The accounting of disclosures of one person: allowed records that returned their rows.

        Args:
            subject: the person pseudonym.
            limit: the most disclosures returned (at least 1).

        Returns:
            Newest first: ``seq``, ``time``, ``correlation_id``, ``principal``, ``role``,
            ``purpose``, ``protocol``, ``action``, ``dataset`` and ``break_glass``.

        Raises:
            AuditError: when the log cannot be read or a line is not a record.
            ValueError: when the limit is below 1.
        """

        def wanted(record: dict[str, Any]) -> bool:
            return record.get("decision") == "allow" and subject in record.get("subjects", ())

        return self._newest(wanted, limit, _disclosure)

    def alerts(
        self, *, min_risk: int, since: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """High-risk records and security alerts, newest first.

        Args:
            min_risk: records whose risk score is at least this are alerts.
            since: alerts at or after this time (timezone-aware).
            limit: the most alerts returned (at least 1).

        Returns:
            Records with ``risk_score >= min_risk`` or of kind ``security_alert``.

        Raises:
            AuditError: when the log cannot be read or a line is not a record.
            ValueError: when ``since`` is naive or the limit is below 1.
        """
        start = _aware(since, "since")

        def wanted(record: dict[str, Any]) -> bool:
            risky = record.get("risk_score", 0) >= min_risk
            return (risky or record.get("kind") == "security_alert") and _within(
                record, start, None
            )

        return self._newest(wanted, limit)

    def export_fhir(self, out: Path) -> int:
        """Write every record as a FHIR R4 AuditEvent, one JSON resource per line.

        Coding choices: ``type`` is audit-event-type ``rest``; ``subtype`` carries the action
        under ``urn:biofed:action``; ``action`` is ``R`` for ``resources/read`` and ``E``
        otherwise; ``outcome`` is ``0`` (allow), ``4`` (deny) or ``8`` (error) with the reason
        code as ``outcomeDesc``. ``purposeOfEvent`` uses v3 ActReason as in ``policy.yaml``
        (treatment TREAT, research HRESCH, quality_improvement HQUALIMP, audit HOPERAT;
        other purposes as text) plus BTG under break-glass. The requesting agent is an
        information recipient (v3 ParticipationType IRCP). The dataset is a System Object
        entity in the role Table, the redacted arguments a Query entity, disclosed persons
        Person entities in the role Patient. The ``urn:biofed:audit`` extension carries the
        chain (seq, prev, mac) and the risk and result figures.

        Args:
            out: the NDJSON file to write; replaced only when the export completes.

        Returns:
            The number of AuditEvents written.

        Raises:
            AuditError: when the log cannot be read, a line is not a record, or ``out``
                cannot be written.
        """
        staging = out.with_name(out.name + ".tmp")
        count = 0
        try:
            with open(staging, "w", encoding="utf-8", opener=_private_file) as handle:
                for record in self.records():
                    resource = _fhir_audit_event(record)
                    handle.write(json.dumps(resource, ensure_ascii=False, separators=(",", ":")))
                    handle.write("\n")
                    count += 1
            os.replace(staging, out)
        except OSError as exc:
            raise AuditError(f"cannot write the FHIR export to {out}") from exc
        finally:
            with contextlib.suppress(OSError):
                staging.unlink(missing_ok=True)
        return count


def verify_file(directory: Path, key: bytes) -> VerifyReport:
    """Verify the audit log in a directory.

    Args:
        directory: holds ``audit.ndjson`` and ``audit.head``.
        key: the HMAC key the log was written with.

    Returns:
        The verification report.

    Raises:
        AuditKeyError: when the key is shorter than 32 bytes.
        AuditError: when the log cannot be read at all.
    """
    return AuditLog(directory, key).verify()


def _private_file(path: str, flags: int) -> int:
    # Exports name principals and pseudonyms, so they are as private as the log itself.
    return os.open(path, flags, 0o600)


def _last_line(fd: int, size: int) -> bytes:
    """The last line with its newline; b"" when a torn write left the file unterminated."""
    chunk = _TAIL_CHUNK
    while True:
        start = max(0, size - chunk)
        data = os.pread(fd, size - start, start)
        if not data.endswith(b"\n"):
            return b""
        cut = data.rfind(b"\n", 0, len(data) - 1)
        if cut >= 0:
            return data[cut + 1 :]
        if start == 0:
            return data
        chunk *= 4


def _lines(handle: BinaryIO, size: int) -> Iterator[bytes]:
    """Lines up to ``size`` bytes: what existed when the snapshot was taken."""
    remaining = size
    while remaining > 0:
        raw = handle.readline(remaining)
        if not raw:
            return
        remaining -= len(raw)
        yield raw


def _broken_at(line: int, problem: str) -> VerifyReport:
    return VerifyReport(ok=False, records=line - 1, first_bad=line, seq=line, problem=problem)


def _holds_seq_in(lines: Iterator[bytes], low: int, high: int) -> bool:
    """Whether a later line holds a seq in [low, high): a swap, not a deletion."""
    for raw in lines:
        record = _parse_line(raw)
        if record is not None and low <= record["seq"] < high:
            return True
    return False


def _missing_sentence(expected: int, seq: int) -> str:
    if seq == expected + 1:
        return f"record {expected} is missing (sequence jumps from {expected - 1} to {seq})"
    return f"records {expected}-{seq - 1} are missing (sequence jumps from {expected - 1} to {seq})"


def _within(record: dict[str, Any], start: datetime | None, end: datetime | None) -> bool:
    if start is None and end is None:
        return True
    try:
        moment = datetime.fromisoformat(record["time"])
    except ValueError as exc:
        raise AuditError(
            f"record {record['seq']} has no valid time; run verification to check the log"
        ) from exc
    return (start is None or moment >= start) and (end is None or moment < end)


def _disclosure(record: dict[str, Any]) -> dict[str, Any]:
    fields = (
        "seq",
        "time",
        "correlation_id",
        "principal",
        "role",
        "purpose",
        "protocol",
        "action",
        "dataset",
        "break_glass",
    )
    return {name: record.get(name) for name in fields}


_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
# The same codes as the purposes' v3_code in policy.yaml; the log does not load the policy.
_PURPOSE_CODES = {
    "treatment": ("TREAT", "treatment"),
    "research": ("HRESCH", "healthcare research"),
    "quality_improvement": ("HQUALIMP", "health quality improvement"),
    "audit": ("HOPERAT", "healthcare operations"),
}
_OUTCOMES = {"allow": "0", "deny": "4", "error": "8"}
_FHIR_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.\-]")
_INT32 = 2**31
_PERSON = {"system": _ENTITY_TYPE, "code": "1", "display": "Person"}
_SYSTEM_OBJECT = {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"}
_PATIENT_ROLE = {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"}


def _fhir_id(correlation_id: str, seq: int) -> str:
    # FHIR ids are [A-Za-z0-9-.]{1,64}; the correlation id itself travels in the extension.
    suffix = f"-{seq}"
    stem = _FHIR_ID_UNSAFE.sub("-", correlation_id) or "audit"
    return stem[: 64 - len(suffix)] + suffix


def _fhir_number(url: str, value: int) -> dict[str, Any]:
    if -_INT32 <= value < _INT32:
        return {"url": url, "valueInteger": value}
    return {"url": url, "valueDecimal": value}


def _person(system: str, value: str) -> dict[str, Any]:
    return {
        "what": {"identifier": {"system": system, "value": value}},
        "type": _PERSON,
        "role": _PATIENT_ROLE,
    }


def _purposes(record: dict[str, Any]) -> list[dict[str, Any]]:
    purposes = []
    purpose = record.get("purpose")
    if purpose in _PURPOSE_CODES:
        code, display = _PURPOSE_CODES[purpose]
        coding = {"system": _ACT_REASON, "code": code, "display": display}
        purposes.append({"coding": [coding], "text": purpose})
    elif purpose:
        purposes.append({"text": purpose})
    if record.get("break_glass"):
        coding = {"system": _ACT_REASON, "code": "BTG", "display": "break the glass"}
        purposes.append({"coding": [coding], "text": "break_glass"})
    return purposes


def _agent(record: dict[str, Any]) -> dict[str, Any]:
    principal = record.get("principal")
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "IRCP",
                    "display": "information recipient",
                }
            ]
        },
        "who": {"identifier": {"value": principal}}
        if principal
        else {"display": "unauthenticated caller"},
        "requestor": True,
    }
    if record.get("client_id"):
        agent["altId"] = record["client_id"]
    if record.get("role"):
        agent["role"] = [{"text": record["role"]}]
    if record.get("protocol"):
        agent["policy"] = ["urn:biofed:protocol:" + quote(record["protocol"], safe="")]
    return agent


def _entities(record: dict[str, Any]) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if record.get("dataset"):
        dataset = {"system": "urn:biofed:dataset", "value": record["dataset"]}
        entities.append(
            {
                "what": {"identifier": dataset},
                "type": _SYSTEM_OBJECT,
                "role": {"system": _OBJECT_ROLE, "code": "22", "display": "Table"},
            }
        )
    if record.get("arguments") is not None:
        query = json.dumps(record["arguments"], sort_keys=True, separators=(",", ":"))
        entities.append(
            {
                "type": _SYSTEM_OBJECT,
                "role": {"system": _OBJECT_ROLE, "code": "24", "display": "Query"},
                "query": base64.b64encode(query.encode()).decode("ascii"),
            }
        )
    break_glass = record.get("break_glass") or {}
    if isinstance(break_glass.get("patient"), str) and break_glass["patient"]:
        entities.append(_person("urn:biofed:break-glass-patient", break_glass["patient"]))
    entities.extend(
        _person("urn:biofed:person-pseudonym", subject)
        for subject in record.get("subjects", ())
        if isinstance(subject, str) and subject
    )
    return entities


def _chain_extension(record: dict[str, Any]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        _fhir_number("seq", record["seq"]),
        {"url": "prev", "valueString": record["prev"]},
        {"url": "mac", "valueString": record["mac"]},
        {"url": "kind", "valueCode": record.get("kind", "request")},
        {"url": "transport", "valueCode": record.get("transport", "stdio")},
        _fhir_number("risk_score", record.get("risk_score", 0)),
        _fhir_number("rows", record.get("rows", 0)),
        {"url": "cached", "valueBoolean": bool(record.get("cached", False))},
    ]
    if record.get("correlation_id"):
        parts.append({"url": "correlation_id", "valueString": record["correlation_id"]})
    for name in ("http_status", "delta_version"):
        if isinstance(record.get(name), int):
            parts.append(_fhir_number(name, record[name]))
    if record.get("result_sha256"):
        parts.append({"url": "result_sha256", "valueString": record["result_sha256"]})
    for name in ("risk_reasons", "masked_columns"):
        parts.extend(
            {"url": name[:-1], "valueString": value} for value in record.get(name, ()) if value
        )
    return {"url": "urn:biofed:audit", "extension": parts}


def _fhir_audit_event(record: dict[str, Any]) -> dict[str, Any]:
    """One stored record as a FHIR R4 AuditEvent (see :meth:`AuditLog.export_fhir`).

    Args:
        record: a record as stored by :meth:`AuditLog.append`.

    Returns:
        The AuditEvent resource as JSON-ready dict, with no empty or null elements.
    """
    action = record.get("action", "")
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": _fhir_id(record.get("correlation_id", ""), record["seq"]),
        "extension": [_chain_extension(record)],
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [{"system": "urn:biofed:action", "code": action}] if action else [],
        "action": "R" if action == "resources/read" else "E",
        "recorded": record["time"],
        "outcome": _OUTCOMES.get(record.get("decision", ""), "8"),
        "outcomeDesc": record.get("reason") or None,
        "purposeOfEvent": _purposes(record),
        "agent": [_agent(record)],
        "source": {
            "observer": {"display": "biofed-catalog"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": _entities(record),
    }
    # FHIR forbids empty arrays and nulls.
    return {name: value for name, value in resource.items() if value not in (None, [])}
