"""Read HL7 v2 ORU^R01 lab result messages into the shared ``lab_results`` table.

``read_hl7v2`` returns two tables: ``lab_results`` (one row per OBX segment, with the
columns of ``connectors.lab_schema.LAB_RESULT_COLUMNS``) and ``messages`` (one row per
message, see ``connectors.hl7v2.schema``). Files are split into messages at each MSH
segment (``connectors.hl7v2.framing``) and each message is read with the delimiters its
own MSH declares (``connectors.hl7v2.message``).

An OBX is read in the context of its order group: the most recent OBR of the message, the
ORC just before that OBR, and the group's SPM (the SPM before the OBX in the group, else the
group's first SPM, so that observations listed before their specimen still get it). The
patient is the most recent PID. A PID or ORC closes the order group before it. Where the
OBR leaves an order number empty the ORC's is used: ``accession`` is OBR-3.1, else ORC-3.1,
else the placer order number; ``placer_order`` is OBR-2.1, else ORC-2.1 (the standard
requires ORC and OBR to carry the same numbers when both do).

Decisions about input that is not a plain result (each reject carries a fixed reason; none
holds a value from the message):

- A file without any MSH segment: one reject, locator ``file``. Segments before the first
  MSH: one reject, locator ``file``; the messages after them are read.
- A whole message is rejected (locator ``MSH-10:<id>``, or ``message:<n>`` when MSH-10 is
  empty) when its MSH does not declare valid delimiters, its type is not ORU^R01 (the reason
  names the type when it looks like one, e.g. ``ADT^A01``), it has no PID, or MSH-7 is not
  a timestamp. Its OBX segments count as ``rejected_results`` in ``messages``.
- A segment whose first field is not a three-character segment id: one reject
  ``<message>/segment:<n>`` (n its position in the message); the rest of the message is read.
- An OBX is rejected (``<message>/OBX:<n>``, n its 1-based position among the message's OBX
  segments) when no OBR precedes it in its order group, no PID precedes it, PID-3 holds no
  identifier, OBX-3.1 is empty, OBX-1 is not a whole number, OBX-2 is empty while OBX-5 has
  a value, OBX-5 does not follow its NM or SN type, or one of the times it needs (OBR-7,
  SPM-17, OBX-14, OBX-19, OBR-22) is not an HL7 timestamp.
- An OBX with an empty OBX-5 (a pending result) is a row with null values.
- Batch envelope segments (FHS, BHS, BTS, FTS) are framing, not data, and are skipped.
- Segments other than MSH, PID, ORC, OBR, OBX and SPM (NTE, PV1, SFT, Z-segments, ...) hold
  nothing ``lab_results`` carries; they are counted in ``messages.segments``.

Folders are read recursively in sorted path order; only ``.hl7``, ``.hl7v2`` and ``.txt``
files are read, hidden files and folders skipped. A file named directly is read whatever
its name.
"""

import gc
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from connectors.errors import SourceNotFoundError
from connectors.hl7v2.errors import FieldError, Hl7MessageError
from connectors.hl7v2.framing import MessageSplitter, decode_segments
from connectors.hl7v2.message import Decoder, Delimiters, Message, Segment
from connectors.hl7v2.schema import LAB_RESULTS, MESSAGES, frame
from connectors.hl7v2.timestamps import epoch_microseconds
from connectors.hl7v2.values import observation_value
from connectors.lab_schema import parse_reference_range
from connectors.result import OnError, ReadResult, RejectCollector

SOURCE_KIND = "hl7v2"
"""``lab_results.source_kind`` of every row this reader produces."""

SUFFIXES = (".hl7", ".hl7v2", ".txt")
"""File name endings read from a folder (any case)."""

NO_MESSAGE = "file holds no HL7 message (no MSH segment)"
LEADING_SEGMENTS = "segments before the first MSH belong to no message"
NOT_ORU_R01 = "message type is not ORU^R01"
NO_PID = "message has no PID segment"
BAD_SEGMENT_ID = "segment does not start with a three-character segment id"
OBX_WITHOUT_OBR = "OBX is not preceded by an OBR in its order group"
OBX_WITHOUT_PID = "OBX is not preceded by a PID segment"
NO_PATIENT_ID = "PID-3 holds no patient identifier"
NO_TEST_CODE = "OBX-3.1 observation code is missing"
BAD_SET_ID = "OBX-1 set id is not a whole number"

_MESSAGE_TYPE = re.compile(r"[A-Z0-9]{3}(?:\^[A-Z0-9]{3})?")
_OBX_FIELDS = 20  # OBX-19 is the last field read
# Rows are turned into a frame every this many: a row tuple of Python objects takes several
# times the memory of the same row in Arrow columns.
_ROWS_PER_FRAME = 50_000
# Reference ranges repeat across a feed (one per test and sex/age band at most).
_reference_limits = lru_cache(maxsize=4096)(parse_reference_range)


def not_a_timestamp(field: str) -> str:
    """The reject reason for a field (``"OBR-7"``) that is not an HL7 timestamp."""
    return f"{field} is not an HL7 timestamp"


def not_oru_r01(message_type: str | None) -> str:
    """The reject reason for a message of another type; names the type if it is code-like.

    Args:
        message_type: MSH-9.1 and MSH-9.2 joined by ``^``, or None.

    Returns:
        ``"message type ADT^A01 is not ORU^R01"``, or ``NOT_ORU_R01`` when the type is
        empty or not made of HL7 code characters (so no free text reaches the reason).
    """
    if message_type is None or _MESSAGE_TYPE.fullmatch(message_type) is None:
        return NOT_ORU_R01
    return f"message type {message_type} is not ORU^R01"


def read_hl7v2(
    source: str | os.PathLike[str],
    *,
    on_error: OnError = "raise",
    default_timezone: str = "UTC",
) -> ReadResult:
    """Read HL7 v2 ORU^R01 messages from a file, or from a folder of files.

    Args:
        source: an HL7 v2 file (any name), or a folder read recursively for ``.hl7``,
            ``.hl7v2`` and ``.txt`` files in sorted order, hidden names skipped.
        on_error: ``"raise"`` stops at the first problem with ``Hl7MessageError``;
            ``"quarantine"`` sets it aside in ``rejects`` with its file, locator and reason.
        default_timezone: IANA zone name in which timestamps without an offset are read.

    Returns:
        ``ReadResult`` with tables ``lab_results`` (exactly ``LAB_RESULT_SCHEMA``) and
        ``messages`` (exactly ``MESSAGE_SCHEMA``), both present even when empty, and the
        rejects.

    Raises:
        SourceNotFoundError: the path does not exist, cannot be read, or is a folder
            without HL7 v2 files.
        Hl7MessageError: with ``on_error="raise"``, at the first rejected file, message,
            segment or OBX (the OBX segments of an order group are read when the group
            closes, so a bad segment inside a group is reported before the group's OBX).
        ValueError: ``on_error`` is not one of the two modes, or ``default_timezone`` is
            not a known zone name.
    """
    reader = _Reader(on_error, _zone(default_timezone))
    files = _source_files(Path(source))
    with _gc_paused():
        for path in files:
            reader.read_file(path)
    return reader.result()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(
            "default_timezone must be an IANA time zone name such as 'UTC' or 'America/New_York'"
        ) from exc


def _source_files(path: Path) -> list[Path]:
    if not path.exists():
        raise SourceNotFoundError(
            f"{path} does not exist. Pass the path of an HL7 v2 file, or of a folder holding "
            ".hl7, .hl7v2 or .txt files."
        )
    if not path.is_dir():
        return [path]
    files = sorted(
        child
        for child in path.rglob("*")
        if child.name.lower().endswith(SUFFIXES)
        and not any(part.startswith(".") for part in child.relative_to(path).parts)
        and child.is_file()
    )
    if not files:
        raise SourceNotFoundError(
            f"{path} holds no .hl7, .hl7v2 or .txt file. Point at the folder the HL7 v2 feed "
            "was written to, or name a file directly."
        )
    return files


@contextmanager
def _gc_paused() -> Iterator[None]:
    # A feed becomes millions of small tuples and strings that all live until the frames
    # are built; the collector's generation scans over them would cost more than parsing.
    # No caller code runs inside read_hl7v2, so pausing it around the whole read is safe.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _OrderGroup:
    """An OBR with its ORC, patient, specimens and OBX segments, read when it closes."""

    __slots__ = ("first_specimen", "observations", "obr", "orc", "patient", "specimen")

    def __init__(
        self, obr: Segment, orc: Segment | None, patient: tuple[str | None, str | None] | None
    ) -> None:
        self.obr = obr
        self.orc = orc
        self.patient = patient
        self.first_specimen: Segment | None = None
        self.specimen: Segment | None = None
        # (position among the message's OBX, the OBX, the SPM in force when it came)
        self.observations: list[tuple[int, Segment, Segment | None]] = []

    def add_specimen(self, spm: Segment) -> None:
        if self.first_specimen is None:
            self.first_specimen = spm
        self.specimen = spm


class _Reader:
    """Rows, message rows and rejects gathered over one ``read_hl7v2`` call."""

    def __init__(self, on_error: OnError, zone: ZoneInfo) -> None:
        self._collector = RejectCollector(on_error)
        self._raise = on_error == "raise"
        self._zone = zone
        self._results: list[tuple] = []
        self._result_frames: list[pl.DataFrame] = []
        self._messages: list[tuple] = []
        self._decoders: dict[tuple[Delimiters, str], Decoder] = {}

    def result(self) -> ReadResult:
        frames = [*self._result_frames, frame(LAB_RESULTS, self._results)]
        return ReadResult(
            tables={
                LAB_RESULTS: pl.concat(frames) if len(frames) > 1 else frames[0],
                MESSAGES: frame(MESSAGES, self._messages),
            },
            rejects=self._collector.frame(),
        )

    def _add_result(self, row: tuple) -> None:
        results = self._results
        results.append(row)
        if len(results) >= _ROWS_PER_FRAME:
            self._result_frames.append(frame(LAB_RESULTS, results))
            self._results = []

    def _reject(self, source: str, locator: str, reason: str) -> None:
        if self._raise:
            raise Hl7MessageError(source, locator, reason)
        self._collector.reject(source, locator, reason)

    def read_file(self, path: Path) -> None:
        source = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceNotFoundError(
                f"{path} cannot be read ({exc.strerror or type(exc).__name__}). Check that "
                "the file is in place and readable by this process."
            ) from exc
        splitter = MessageSplitter(data)
        number = 0
        for number, segments in enumerate(splitter, 1):
            if number == 1 and splitter.leading:
                self._reject(source, "file", LEADING_SEGMENTS)
            self._read_message(source, number, segments)
        if number == 0:
            self._reject(source, "file", NO_MESSAGE)

    def _read_message(self, source: str, number: int, raw: list[bytes]) -> None:
        texts, encoding = decode_segments(raw)
        try:
            message = Message.parse(number, texts, encoding, self._decoders)
        except FieldError as error:
            locator = f"message:{number}"
            self._reject(source, locator, str(error))
            observations = sum(1 for text in texts if text.startswith("OBX"))
            self._messages.append((locator, *([None] * 8), encoding, len(texts), 0, observations))
            return
        decoder = message.decoder
        msh = message.msh
        message_id = _stripped(decoder.text(msh.field(10)))
        locator = f"MSH-10:{message_id}" if message_id else f"message:{number}"
        code = decoder.component(msh.field(9), 1)
        trigger = decoder.component(msh.field(9), 2)
        message_type = "^".join(part for part in (code, trigger) if part) or None
        facility = decoder.component(msh.field(4))
        application = decoder.component(msh.field(3))
        try:
            sent_at = self._time(decoder, msh.field(7), "MSH-7")
            time_error = None
        except FieldError as error:
            sent_at, time_error = None, str(error)
        pids = [segment for segment in message.segments if segment.id == "PID"]
        first_patient = _patient(pids[0], decoder)[0] if pids else None
        header = (
            locator,
            message_id,
            message_type,
            trigger,
            decoder.component(msh.field(12)),
            application,
            facility,
            sent_at,
            first_patient,
            encoding,
            len(message.segments),
        )
        if message_type != "ORU^R01":
            reason: str | None = not_oru_r01(message_type)
        elif not pids:
            reason = NO_PID
        else:
            reason = time_error
        if reason is not None:
            self._reject(source, locator, reason)
            observations = sum(1 for segment in message.segments if segment.id == "OBX")
            self._messages.append((*header, 0, observations))
            return
        results, rejected = self._read_results(
            message, source, locator, facility or application, message_id
        )
        self._messages.append((*header, results, rejected))

    def _read_results(
        self,
        message: Message,
        source: str,
        locator: str,
        site: str | None,
        message_id: str | None,
    ) -> tuple[int, int]:
        """Emit the rows of one ORU^R01 message; returns (results, rejected results)."""
        decoder = message.decoder
        results = rejected = 0
        observations = 0
        group: _OrderGroup | None = None
        orc: Segment | None = None
        patient: tuple[str | None, str | None] | None = None

        def close(group: _OrderGroup | None) -> None:
            nonlocal results, rejected
            if group is not None and group.observations:
                good, bad = self._read_group(group, decoder, source, locator, site, message_id)
                results += good
                rejected += bad

        for segment in message.segments[1:]:
            segment_id = segment.id
            if segment_id == "OBX":
                observations += 1
                if group is None:
                    self._reject(source, f"{locator}/OBX:{observations}", OBX_WITHOUT_OBR)
                    rejected += 1
                else:
                    group.observations.append((observations, segment, group.specimen))
            elif segment_id == "OBR":
                close(group)
                group = _OrderGroup(segment, orc, patient)
                orc = None
            elif segment_id == "SPM":
                if group is not None:
                    group.add_specimen(segment)
            elif segment_id == "ORC":
                close(group)
                group, orc = None, segment
            elif segment_id == "PID":
                close(group)
                group, orc = None, None
                patient = _patient(segment, decoder)
            elif segment_id is None:
                self._reject(source, f"{locator}/segment:{segment.position}", BAD_SEGMENT_ID)
        close(group)
        return results, rejected

    def _read_group(
        self,
        group: _OrderGroup,
        decoder: Decoder,
        source: str,
        locator: str,
        site: str | None,
        message_id: str | None,
    ) -> tuple[int, int]:
        """Emit the rows of one order group's OBX segments; returns (results, rejected)."""
        obr, orc = group.obr, group.orc
        obr_placer = decoder.component(obr.field(2))
        orc_placer = decoder.component(orc.field(2)) if orc is not None else None
        placer = obr_placer or orc_placer
        accession = (
            decoder.component(obr.field(3))
            or (decoder.component(orc.field(3)) if orc is not None else None)
            or placer
        )
        panel = obr.field(4)
        order = (
            site,
            message_id,
            accession,
            placer,
            decoder.component(panel, 1),
            decoder.component(panel, 3),
            decoder.component(panel, 2),
        )
        obr_specimen = decoder.component(obr.field(15))
        good = bad = 0
        for number, obx, specimen in group.observations:
            specimen = specimen or group.first_specimen
            try:
                row = self._row(
                    f"{locator}/OBX:{number}", order, group, obx, specimen, obr_specimen, decoder
                )
            except FieldError as error:
                self._reject(source, f"{locator}/OBX:{number}", str(error))
                bad += 1
            else:
                self._add_result(row)
                good += 1
        return good, bad

    def _row(
        self,
        locator: str,
        order: tuple,
        group: _OrderGroup,
        obx: Segment,
        specimen: Segment | None,
        obr_specimen: str | None,
        decoder: Decoder,
    ) -> tuple:
        """One ``lab_results`` row, in column order.

        Raises:
            FieldError: the OBX cannot be read as a result (the message is the reason).
        """
        if group.patient is None:
            raise FieldError(OBX_WITHOUT_PID)
        patient_id, authority = group.patient
        if patient_id is None:
            raise FieldError(NO_PATIENT_ID)
        site, message_id, accession, placer, panel_code, panel_system, panel_display = order
        fields = obx.fields
        if len(fields) < _OBX_FIELDS:
            fields = fields + [""] * (_OBX_FIELDS - len(fields))
        component = decoder.component
        observation = decoder.components(fields[3])
        test_code = observation[0]
        if test_code is None:
            raise FieldError(NO_TEST_CODE)
        set_id = component(fields[1])
        if set_id is not None and not set_id.isdecimal():
            raise FieldError(BAD_SET_ID)
        value_type = component(fields[2])
        value_type = value_type.upper() if value_type is not None else None
        value = observation_value(value_type, fields[5], decoder)
        units = decoder.components(fields[6])
        reference = decoder.text(fields[7]) if fields[7] else None
        reference_low, reference_high = _reference_limits(reference)
        flags = [component(flag) for flag in decoder.repetitions(fields[8])]
        obr = group.obr
        collected_at = self._time(decoder, obr.field(7), "OBR-7")
        if collected_at is None and specimen is not None:
            collected_at = self._time(decoder, specimen.field(17), "SPM-17")
        if collected_at is None:
            collected_at = self._time(decoder, fields[14], "OBX-14")
        resulted_at = self._time(decoder, fields[19], "OBX-19")
        if resulted_at is None:
            resulted_at = self._time(decoder, obr.field(22), "OBR-22")
        return (
            locator,
            SOURCE_KIND,
            site,
            message_id,
            patient_id,
            authority,
            accession,
            placer,
            panel_code,
            panel_system,
            panel_display,
            int(set_id) if set_id is not None else None,
            _stripped(decoder.text(fields[4])) if fields[4] else None,
            test_code,
            observation[2],
            observation[1],
            observation[3],
            observation[5],
            observation[4],
            None,
            value_type,
            value.text,
            value.number,
            value.comparator,
            value.code,
            value.system,
            value.display,
            units[0],
            units[2],
            reference,
            reference_low,
            reference_high,
            "~".join(flag for flag in flags if flag) or None,
            component(fields[11]),
            (component(specimen.field(4)) if specimen is not None else None) or obr_specimen,
            collected_at,
            resulted_at,
        )

    def _time(self, decoder: Decoder, field: str, name: str) -> int | None:
        """A TS/DTM field's first component as epoch microseconds, None when empty.

        Raises:
            FieldError: the value is not an HL7 timestamp (the message names the field).
        """
        text = decoder.component(field, 1)
        if text is None:
            return None
        try:
            return epoch_microseconds(text, self._zone)
        except ValueError as exc:
            raise FieldError(not_a_timestamp(name)) from exc


def _patient(pid: Segment, decoder: Decoder) -> tuple[str | None, str | None]:
    """(identifier, assigning authority) from PID-3: the MR repetition, else the first."""
    first: tuple[str | None, str | None] = (None, None)
    for repetition in decoder.repetitions(pid.field(3)):
        identifier = decoder.part(repetition, 1)
        if identifier is None:
            continue
        type_code = decoder.part(repetition, 5)
        if type_code is not None and type_code.upper() == "MR":
            return identifier, decoder.part(repetition, 4)
        if first[0] is None:
            first = (identifier, decoder.part(repetition, 4))
    return first


def _stripped(text: str | None) -> str | None:
    return text.strip() or None if text is not None else None
