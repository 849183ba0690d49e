"""Read a laboratory information system's CSV export into ``lab_results`` rows.

One file at a time, laid out as a site profile describes (``connectors.lab_csv.profile``).
The file is decoded and cut into records by ``connectors.lab_csv.text``, and records become
rows by ``connectors.lab_csv.rows`` in slices of ``CHUNK_ROWS``, all with polars expressions.
Memory grows with the file (its text and records are held while it is read), which suits
exports of tens of megabytes.

Decisions:

- Headers match the profile case-insensitively, trimmed. A file without the columns of the
  profile's required fields (patient id, test code, value) is not that site's lab export:
  ``UnsupportedFormatError`` in raise mode, one reject located ``file`` in quarantine mode.
  Optional mapped columns the file lacks give null fields and are listed in ``files``.
- A file that does not decode with the profile's encoding (or, for ``'auto'``, as UTF-8 or
  cp1252) is handled the same way.
- Records are located ``line:N``, N the physical line the record starts on (line 1 is the
  file's first line, normally the header).
- ``observation_seq`` numbers the kept rows of each accession in file order, from 1; rows
  without an accession are numbered per patient.
"""

import os
from pathlib import Path

import polars as pl

from connectors.errors import SourceNotFoundError, UnsupportedFormatError
from connectors.lab_csv.profile import SiteProfile, resolve_profile
from connectors.lab_csv.rows import REASON, lab_rows
from connectors.lab_csv.schema import FILE_SCHEMA
from connectors.lab_csv.text import (
    LINE,
    FileProblem,
    decode,
    detect_delimiter,
    split_fields,
    split_records,
)
from connectors.lab_schema import LAB_RESULT_COLUMNS, LAB_RESULT_SCHEMA
from connectors.result import OnError, ReadResult, RejectCollector

CHUNK_ROWS = 100_000
"""Records turned into rows at a time."""

_REQUIRED = ("patient_id", "test_code", "value")


def read_lab_csv(
    source: str | os.PathLike[str],
    *,
    site: str | os.PathLike[str] | SiteProfile,
    on_error: OnError = "raise",
) -> ReadResult:
    """Read one LIS CSV export with a site profile.

    Args:
        source: the CSV file.
        site: a built-in profile name (``'SITE-A01'``, ``'SITE-B07'``, ``'SYNTHEA'``), the
            path of a YAML profile, or a ``SiteProfile``.
        on_error: ``"raise"`` stops at the first malformed record or unreadable file;
            ``"quarantine"`` sets it aside in ``rejects`` with a locator and a reason.

    Returns:
        ``ReadResult`` with ``tables`` ``lab_results`` (exactly ``LAB_RESULT_SCHEMA``, file
        order) and ``files`` (one row, ``FILE_SCHEMA``: encoding, delimiter, counts).

    Raises:
        SourceNotFoundError: the file does not exist or cannot be read.
        UnsupportedFormatError: the path is a folder; or, with ``on_error="raise"``, the file
            does not decode or lacks the profile's required columns.
        MalformedRecordError: with ``on_error="raise"``, at the first malformed record.
        UnknownSiteProfileError: ``site`` names no built-in profile and no profile file.
        InvalidSiteProfileError: a profile file breaks the profile rules.
        ValueError: ``on_error`` is not one of the two modes.
    """
    collector = RejectCollector(on_error)
    profile = resolve_profile(site)
    path = Path(source)
    label = str(source)
    data = _read_bytes(path, label)
    encoding = delimiter = None
    absent: list[str] = []
    parts: list[pl.DataFrame] = []
    try:
        text, encoding = decode(data, profile.encoding)
        del data
        delimiter = detect_delimiter(
            text, profile.delimiter, decimal_comma=profile.decimal_separator == ","
        )
        split = split_records(text, delimiter)
        del text
        if not split.header:
            raise FileProblem("file holds no header row")
        positions, absent = _positions(split.header, profile)
    except FileProblem as problem:
        if on_error == "raise":
            raise UnsupportedFormatError(
                f"{label}: {problem.reason}. Check that the file is a {profile.site} lab "
                "export and that the site profile's encoding and columns match it, or read "
                "with on_error='quarantine' to set the file aside."
            ) from problem
        collector.reject(label, "file", problem.reason)
    else:
        width = len(split.header)
        for records in split.records.iter_slices(CHUNK_ROWS):
            raw, wrong = split_fields(records, delimiter, positions, width)
            rows = lab_rows(raw, profile)
            problems = [
                *(
                    (line, f"row has {count} fields where the header has {width}")
                    for line, count in wrong.iter_rows()
                ),
                *rows.filter(pl.col(REASON).is_not_null()).select(LINE, REASON).iter_rows(),
            ]
            for line, reason in sorted(problems):
                collector.reject(label, f"line:{line}", reason)
            parts.append(rows.filter(pl.col(REASON).is_null()).drop(REASON))
        for line, reason in split.problems:
            collector.reject(label, f"line:{line}", reason)

    results = _with_sequence(parts)
    files = pl.DataFrame(
        [
            (
                label,
                profile.site,
                encoding,
                delimiter,
                results.height,
                len(collector),
                ",".join(absent) or None,
            )
        ],
        schema=FILE_SCHEMA,
        orient="row",
    )
    return ReadResult(
        tables={"lab_results": results, "files": files}, rejects=collector.frame()
    )


def _read_bytes(path: Path, label: str) -> bytes:
    if path.is_dir():
        raise UnsupportedFormatError(
            f"{label} is a folder. read_lab_csv reads one export file at a time: pass each "
            "CSV file of the folder in turn."
        )
    if not path.exists():
        raise SourceNotFoundError(f"{label} does not exist. Pass the path of a lab CSV export.")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _unreadable(label, exc) from exc


def _unreadable(label: str, exc: OSError) -> SourceNotFoundError:
    return SourceNotFoundError(
        f"{label} cannot be read ({exc.strerror or type(exc).__name__}). Check that the file "
        "is in place and readable by this process."
    )


def _positions(header: list[str], profile: SiteProfile) -> tuple[dict[str, int], list[str]]:
    """Field -> index of its column in ``header``, and the optional headers the file lacks.

    Raises:
        FileProblem: a required column is missing, or a mapped header appears twice.
    """
    index: dict[str, int] = {}
    repeated: set[str] = set()
    for position, name in enumerate(header):
        key = name.strip().lstrip("\ufeff").strip().lower()
        if key in index:
            repeated.add(key)
        index.setdefault(key, position)
    mapped = profile.columns.mapped()
    missing = [mapped[name] for name in _REQUIRED if mapped[name].lower() not in index]
    if missing:
        raise FileProblem(
            f"header lacks the column(s) {', '.join(missing)} that site profile "
            f"{profile.site} requires, so it is not that site's lab export"
        )
    twice = sorted({header for header in mapped.values() if header.lower() in repeated})
    if twice:
        raise FileProblem(f"header names the column(s) {', '.join(twice)} more than once")
    positions = {
        name: index[header.lower()] for name, header in mapped.items() if header.lower() in index
    }
    absent = list(dict.fromkeys(
        header for header in mapped.values() if header.lower() not in index
    ))
    return positions, absent


def _with_sequence(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Kept rows of every chunk, with ``observation_seq``, in ``LAB_RESULT_COLUMNS`` order."""
    if not parts:
        return pl.DataFrame(schema=LAB_RESULT_SCHEMA)
    rows = pl.concat(parts)
    sequence = (pl.int_range(1, pl.len() + 1).over("accession", "patient_id")).cast(pl.Int64())
    return rows.with_columns(observation_seq=sequence).select(
        [column.name for column in LAB_RESULT_COLUMNS]
    )
