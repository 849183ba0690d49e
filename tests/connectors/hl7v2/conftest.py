"""Builders of small HL7 v2 messages for the cases the real files do not show.

Messages are written as segment strings; the default patient carries a distinctive MRN and
name so tests can check that neither ever reaches a reject reason or an error message.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

MRN = "MRN73914"
FAMILY = "Quillfeather"
GIVEN = "Ottoline"
PATIENT_VALUES = (MRN, FAMILY, GIVEN)
"""Values of the default PID that must never appear in a reason or an error message."""

MSH = "MSH|^~\\&|LABAPP|SITE-A02|EHR|HOSP|20240305101500+0100||ORU^R01^ORU_R01|MSG-1|P|2.5.1"
PID = f"PID|1||{MRN}^^^SITE-A02-LIS^MR||{FAMILY}^{GIVEN}||19800101|F"
ORC = "ORC|RE|PLC-1|ACC-1"
OBR = "OBR|1|PLC-1|ACC-1|24323-8^Comprehensive metabolic panel^LN|||20240305083000+0100"
GLUCOSE = "OBX|1|NM|2345-7^Glucose^LN^GLU^Glucose local^L||98|mg/dL^^UCUM|70-99|N|||F"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def msh(control_id: str = "MSH-1", message_type: str = "ORU^R01^ORU_R01") -> str:
    """An MSH with the default delimiters, a control id and a message type."""
    return (
        f"MSH|^~\\&|LABAPP|SITE-A02|EHR|HOSP|20240305101500+0100||{message_type}|{control_id}"
        "|P|2.5.1"
    )


def message(*segments: str, header: str = MSH, pid: str | None = PID) -> list[str]:
    """A message's segments: the header, the PID (unless None), then ``segments``."""
    return [header, *([pid] if pid is not None else []), *segments]


def obx(
    n: int,
    value_type: str,
    value: str,
    *,
    code: str = "2345-7^Glucose^LN",
    units: str = "",
    reference: str = "",
    flags: str = "",
    status: str = "F",
    observed: str = "",
    analysed: str = "",
) -> str:
    """An OBX segment with the fields tests vary; the others empty."""
    fields = [
        "OBX",
        str(n),
        value_type,
        code,
        "",
        value,
        units,
        reference,
        flags,
        "",
        "",
        status,
        "",
        "",
        observed,
        "",
        "",
        "",
        "",
        analysed,
    ]
    return "|".join(fields).rstrip("|")


WriteHl7 = Callable[..., Path]


@pytest.fixture
def write_hl7(tmp_path: Path) -> WriteHl7:
    """Write messages (lists of segments) joined by ``separator`` to a file under tmp_path."""

    def write(
        *messages: list[str],
        separator: str = "\r",
        name: str = "feed.hl7",
        encoding: str = "utf-8",
    ) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(separator.join(segments) + separator for segments in messages)
        path.write_bytes(text.encode(encoding))
        return path

    return write


def segment(segment_id: str, fields: dict[int, str]) -> str:
    """A segment (not MSH) from its non-empty fields by number: ``{3: "ACC-1"}``."""
    size = max(fields)
    return "|".join([segment_id, *(fields.get(n, "") for n in range(1, size + 1))])
