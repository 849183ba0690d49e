"""Read CDISC SDTM datasets (SAS XPORT or CSV) into one table per domain, with conformance.

A source is one ``.xpt`` or ``.csv`` file, or a folder holding the datasets of one study:
its ``.xpt`` and ``.csv`` files (suffixes in any case) are read in sorted name order; hidden
names (starting with '.') and sub-folders are skipped, and so are other files (define.xml,
PDFs). ``source_file`` is the file's name.

Rows are filed under their DOMAIN value (upper case in the metadata tables, lower case as
the table key): a split dataset such as LBUR (DOMAIN ``LB``) joins ``lb``. A file whose
DOMAIN values differ is filed under its most frequent value (a ``domain_mismatch``
finding); without DOMAIN the first two letters of the dataset name decide (a
``required_variable_missing`` finding). Files of one domain are stacked diagonally (the
union of their variables, a variable missing from a file null on its rows; a variable that
is Char in one file and Num in another becomes String).

Conformance problems are findings (see ``connectors.sdtm.conformance``), never rejects and
never errors: the data is loaded as the files hold it. What cannot be loaded is rejected:
a whole file (locator ``file``) when it is empty, not SAS XPORT, truncated or corrupt,
holds several XPORT members, is not UTF-8 or Windows-1252 text, or is a CSV without the
STUDYID and DOMAIN header; a CSV row (locator ``row:N``) whose numeric variable holds text.
"""

import os
from pathlib import Path

import polars as pl

from connectors.errors import MalformedRecordError, SourceNotFoundError, UnsupportedFormatError
from connectors.result import OnError, ReadResult, RejectCollector
from connectors.sdtm.conformance import conformance_findings
from connectors.sdtm.files import LoadedDataset, UnreadableFileError, load_csv, load_xport
from connectors.sdtm.schema import PROVENANCE, dataset_schema, variable_schema
from connectors.sdtm.standard import DOMAIN_LABELS

_SUFFIXES = (".xpt", ".csv")
METADATA_TABLES = ("datasets", "variables", "findings")
"""Table names of ``read_sdtm`` that are not domains."""


class SdtmFileError(MalformedRecordError):
    """A file of an SDTM source cannot be loaded as a dataset.

    Raised in ``on_error="raise"`` mode for files that are empty, not SAS XPORT, truncated
    or corrupt, hold several XPORT members, are not UTF-8 or Windows-1252 text, or are CSV
    without the STUDYID/DOMAIN header; ``locator`` is ``file`` and ``reason`` a fixed
    sentence without values.
    """


def read_sdtm(source: str | os.PathLike[str], *, on_error: OnError = "raise") -> ReadResult:
    """Read SDTM datasets into one table per domain, plus metadata and conformance findings.

    Args:
        source: a ``.xpt`` (SAS XPORT v5 or v8) or ``.csv`` dataset, or a folder of them
            (one study; not read recursively).
        on_error: ``"raise"`` stops at the first file or CSV row that cannot be loaded;
            ``"quarantine"`` sets it aside in ``rejects`` and goes on.

    Returns:
        ``ReadResult`` whose ``tables`` hold, first, one frame per domain keyed by the
        lower-case domain code (``dm`` first, the rest sorted): the files' variables (upper
        case; Char -> String, trailing blanks stripped, empty -> null; Num -> Float64, SAS
        missing -> null) then ``source_file``, ``source_locator`` (``row:N``) and
        ``dataset``; then ``datasets``, ``variables`` and ``findings`` with the schemas of
        ``connectors.sdtm.schema``.

    Raises:
        SourceNotFoundError: the path does not exist, or is a folder without .xpt or .csv
            files.
        UnsupportedFormatError: the path is a file without a .xpt or .csv suffix.
        SdtmFileError: with ``on_error="raise"``, at the first file that cannot be loaded.
        MalformedRecordError: with ``on_error="raise"``, at the first CSV row whose numeric
            variable is not a number.
        ValueError: ``on_error`` is not one of the two modes.
    """
    collector = RejectCollector(on_error)
    loaded: list[LoadedDataset] = []
    for path, label in _source_files(Path(source)):
        try:
            if path.suffix.lower() == ".xpt":
                loaded.append(load_xport(path, label))
            else:
                loaded.append(load_csv(path, label, collector))
        except UnreadableFileError as exc:
            if on_error == "raise":
                raise SdtmFileError(label, "file", exc.reason) from exc
            collector.reject(label, "file", exc.reason)
    tables = _domain_tables(loaded)
    tables["datasets"] = _datasets_table(loaded)
    tables["variables"] = _variables_table(loaded)
    tables["findings"] = conformance_findings(loaded)
    return ReadResult(tables=tables, rejects=collector.frame())


def _source_files(path: Path) -> list[tuple[Path, str]]:
    if not path.exists():
        raise SourceNotFoundError(
            f"{path} does not exist. Pass the path of an SDTM .xpt or .csv dataset, or of the "
            "folder holding a study's datasets."
        )
    if path.is_dir():
        files = sorted(
            (child, child.name)
            for child in path.iterdir()
            if not child.name.startswith(".")
            and child.name.lower().endswith(_SUFFIXES)
            and child.is_file()
        )
        if not files:
            raise SourceNotFoundError(
                f"{path} holds no .xpt or .csv file. Point at the folder a study's SDTM "
                "datasets were written to (sub-folders are not read)."
            )
        return files
    if not path.name.lower().endswith(_SUFFIXES):
        raise UnsupportedFormatError(
            f"{path} is not an SDTM dataset this reader knows by name. read_sdtm reads SAS "
            "transport (.xpt) and .csv files; rename the file if it holds one of these."
        )
    return [(path, path.name)]


def _domain_tables(loaded: list[LoadedDataset]) -> dict[str, pl.DataFrame]:
    by_domain: dict[str, list[pl.DataFrame]] = {}
    for dataset in loaded:
        by_domain.setdefault(dataset.domain.lower(), []).append(dataset.frame)
    order = sorted(by_domain, key=lambda key: (key != "dm", key))
    tables = {}
    for key in order:
        frames = by_domain[key]
        stacked = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
        variables = [name for name in stacked.columns if name not in PROVENANCE]
        tables[key] = stacked.select(*variables, *PROVENANCE)
    return tables


def _datasets_table(loaded: list[LoadedDataset]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            (
                dataset.source_file,
                dataset.dataset,
                dataset.domain,
                dataset.label
                if dataset.format != "csv"
                else DOMAIN_LABELS.get(dataset.domain),
                dataset.frame.height,
                dataset.format,
            )
            for dataset in loaded
        ],
        schema=dataset_schema(),
        orient="row",
    )


def _variables_table(loaded: list[LoadedDataset]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            (
                dataset.source_file,
                dataset.dataset,
                dataset.domain,
                variable.name,
                variable.label,
                variable.type,
                variable.length,
                position,
            )
            for dataset in loaded
            for position, variable in enumerate(dataset.variables, start=1)
        ],
        schema=variable_schema(),
        orient="row",
    )
