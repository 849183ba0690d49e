"""The VCF header: meta-information lines and the #CHROM line, parsed into typed declarations.

INFO and FORMAT types come from the header, never from the data: ``FieldDef`` records each
declaration as written, with the output column it fills. Only the lines the connector needs
are interpreted (``##fileformat``, ``##reference``, ``##contig``, ``##INFO``, ``##FORMAT``,
``##FILTER`` and ``#CHROM``); every other line is kept verbatim in ``VcfHeader.lines``.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from connectors.errors import UnsupportedFormatError

FIXED_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")
"""The eight columns every VCF data line starts with, as the #CHROM line names them."""

TYPES = ("Integer", "Float", "Flag", "Character", "String")
"""Values of ``Type=`` in INFO and FORMAT declarations."""

# "-1" is how some VCF 4.0-era tools (PyVCF's examples among them) wrote '.'.
_NUMBER = re.compile(r"^(?:[0-9]+|-1|[ARG.])$")
_NOT_NAME_CHARACTER = re.compile(r"[^A-Za-z0-9_]")
_STRUCTURED = re.compile(r"^##(INFO|FORMAT|FILTER|contig)=<(.*)>\s*$", re.DOTALL)


@dataclass(frozen=True)
class FieldDef:
    """One ``##INFO`` or ``##FORMAT`` declaration.

    Attributes:
        id: the key as declared (``DP``, ``AF``, ...).
        number: ``Number=`` as written: a whole number, ``A``, ``R``, ``G``, ``.`` or the
            legacy ``-1`` (read as ``.``).
        type: ``Type=`` as written: one of ``TYPES``.
        description: ``Description=`` without its quotes, or None.
        column: the output column the values fill (``info_DP``, ``fmt_AD``, ...).
    """

    id: str
    number: str
    type: str
    description: str | None
    column: str


@dataclass(frozen=True)
class Contig:
    """One ``##contig`` declaration: its ID and, when declared, its length."""

    id: str
    length: int | None


@dataclass(frozen=True)
class VcfHeader:
    """Everything the header of one VCF file declares.

    Attributes:
        fileformat: the version from ``##fileformat`` (``VCFv4.2``, ...).
        reference: the ``##reference`` value, or None.
        contigs: ``##contig`` declarations in header order.
        info: ``##INFO`` declarations in header order (the first of duplicate IDs).
        formats: ``##FORMAT`` declarations in header order, GT included.
        filters: ``##FILTER`` IDs in header order.
        samples: sample names from the #CHROM line, in column order.
        has_format_column: the #CHROM line names a FORMAT column.
        lines: every header line verbatim (line endings removed), the #CHROM line last.
        warnings: fixed sentences about declarations that were set aside.
    """

    fileformat: str
    reference: str | None
    contigs: tuple[Contig, ...]
    info: tuple[FieldDef, ...]
    formats: tuple[FieldDef, ...]
    filters: tuple[str, ...]
    samples: tuple[str, ...]
    has_format_column: bool
    lines: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The header as written: every line, each ending with a newline."""
        return "".join(f"{line}\n" for line in self.lines)

    @property
    def n_columns(self) -> int:
        """The number of tab-separated columns every data line must have."""
        return len(FIXED_COLUMNS) + (1 + len(self.samples) if self.has_format_column else 0)

    def info_field(self, key: str) -> FieldDef | None:
        """The INFO declaration of ``key``, or None when the header does not declare it."""
        return next((field for field in self.info if field.id == key), None)

    def format_field(self, key: str) -> FieldDef | None:
        """The FORMAT declaration of ``key``, or None when the header does not declare it."""
        return next((field for field in self.formats if field.id == key), None)


def parse_header(lines: Iterable[str], source: str) -> VcfHeader:
    """Parse header lines, from ``##fileformat`` to the #CHROM line included.

    Args:
        lines: the header lines in file order, without line endings. Parsing stops at the
            #CHROM line.
        source: the file name used in error messages.

    Returns:
        The parsed header.

    Raises:
        UnsupportedFormatError: the first line is not ``##fileformat=VCF...``, a line before
            #CHROM is not a ``##`` line, a declaration cannot be read, or there is no #CHROM
            line.
    """
    kept: list[str] = []
    fileformat: str | None = None
    reference: str | None = None
    contigs: list[Contig] = []
    info: list[dict[str, str]] = []
    formats: list[dict[str, str]] = []
    filters: list[str] = []
    warnings: list[str] = []
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r")
        if number == 1:
            if not line.startswith("##fileformat=VCF"):
                raise UnsupportedFormatError(
                    f"{source} is not a VCF file: its first line is not '##fileformat=VCFv4.x'. "
                    "Pass a VCF (.vcf, .vcf.gz) or BCF file."
                )
            fileformat = line.split("=", 1)[1].strip()
        kept.append(line)
        if line.startswith("#CHROM"):
            samples, has_format = _parse_column_line(line, number, source)
            return VcfHeader(
                fileformat=fileformat or "",
                reference=reference,
                contigs=tuple(contigs),
                info=_fields(info, "INFO", "info_", {"info_undeclared"}, warnings),
                formats=_fields(formats, "FORMAT", "fmt_", set(), warnings),
                filters=tuple(filters),
                samples=samples,
                has_format_column=has_format,
                lines=tuple(kept),
                warnings=tuple(warnings),
            )
        if not line.startswith("##"):
            raise UnsupportedFormatError(
                f"{source} line {number} is neither a '##' meta-information line nor the "
                "'#CHROM' line, and no data may come before the #CHROM line. Fix the header "
                "so that every line before the data starts with '##' and the last one with "
                "'#CHROM'."
            )
        if line.startswith("##reference=") and reference is None:
            reference = line.split("=", 1)[1]
            continue
        match = _STRUCTURED.match(line)
        if match is None:
            if line.startswith(("##INFO=", "##FORMAT=", "##FILTER=", "##contig=")):
                raise _unreadable(source, number, "its value is not enclosed in '<' and '>'")
            continue
        kind, body = match.groups()
        attributes = _parse_structured(body)
        if attributes is None:
            raise _unreadable(
                source,
                number,
                "it is not a list of KEY=VALUE pairs separated by commas, with values holding "
                'commas or quotes in double quotes (escape a quote as \\")',
            )
        if not attributes.get("ID"):
            raise _unreadable(source, number, "it has no ID")
        if kind == "contig":
            contigs.append(_contig(attributes, source, number))
        elif kind == "FILTER":
            filters.append(attributes["ID"])
        else:
            _check_declaration(attributes, kind, source, number)
            (info if kind == "INFO" else formats).append(attributes)
    raise UnsupportedFormatError(
        f"{source} has no '#CHROM' header line. A VCF header ends with the tab-separated line "
        "'#CHROM POS ID REF ALT QUAL FILTER INFO' (then FORMAT and the sample names); add it "
        "before the first data line."
    )


def _unreadable(source: str, number: int, problem: str) -> UnsupportedFormatError:
    return UnsupportedFormatError(
        f"{source} header line {number} cannot be read: {problem}. Fix the declaration, "
        'e.g. ##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">.'
    )


def _parse_column_line(line: str, number: int, source: str) -> tuple[tuple[str, ...], bool]:
    columns = line.split("\t")
    if tuple(columns[: len(FIXED_COLUMNS)]) != FIXED_COLUMNS:
        raise UnsupportedFormatError(
            f"{source} header line {number} (#CHROM) does not name the columns #CHROM, POS, "
            "ID, REF, ALT, QUAL, FILTER and INFO in that order, separated by tabs. Fix the "
            "line: separate its columns with single tab characters, not spaces."
        )
    rest = columns[len(FIXED_COLUMNS) :]
    if not rest:
        return (), False
    if rest[0] != "FORMAT":
        raise UnsupportedFormatError(
            f"{source} header line {number} (#CHROM) has a column after INFO that is not "
            "FORMAT. Sample columns must follow a FORMAT column; fix the #CHROM line."
        )
    samples = tuple(rest[1:])
    if len(set(samples)) != len(samples) or any(not sample for sample in samples):
        raise UnsupportedFormatError(
            f"{source} header line {number} (#CHROM) names a sample twice or has an empty "
            "sample name. Give every sample column a unique, non-empty name."
        )
    return samples, True


def _parse_structured(body: str) -> dict[str, str] | None:
    """``ID=DP,Number=1,Description="a, b"`` -> a dict; None when it cannot be read."""
    attributes: dict[str, str] = {}
    position, end = 0, len(body)
    while position < end:
        equals = body.find("=", position)
        if equals < 0:
            return None
        key = body[position:equals].strip()
        if not key or "," in key:
            return None
        position = equals + 1
        if position < end and body[position] == '"':
            position += 1
            characters: list[str] = []
            while True:
                if position >= end:
                    return None
                character = body[position]
                if character == "\\" and position + 1 < end:
                    characters.append(body[position + 1])
                    position += 2
                    continue
                position += 1
                if character == '"':
                    break
                characters.append(character)
            value = "".join(characters)
            if position < end and body[position] != ",":
                return None
        else:
            comma = body.find(",", position)
            comma = end if comma < 0 else comma
            value = body[position:comma]
            position = comma
        attributes.setdefault(key, value)
        position += 1
    return attributes


def _contig(attributes: dict[str, str], source: str, number: int) -> Contig:
    length = attributes.get("length")
    if length is None or length in ("", "."):
        return Contig(attributes["ID"], None)
    if not length.isdigit():
        raise _unreadable(source, number, "the contig length is not a whole number")
    return Contig(attributes["ID"], int(length))


def _check_declaration(attributes: dict[str, str], kind: str, source: str, number: int) -> None:
    value_type = attributes.get("Type")
    if value_type not in TYPES:
        raise _unreadable(source, number, f"its Type is missing or not one of {', '.join(TYPES)}")
    count = attributes.get("Number")
    if count is None or not _NUMBER.match(count):
        raise _unreadable(
            source, number, "its Number is missing or not a whole number, A, R, G or '.'"
        )
    if kind == "FORMAT" and (value_type == "Flag" or count == "0"):
        raise _unreadable(source, number, "FORMAT fields cannot be flags (Type=Flag, Number=0)")


def _fields(
    declarations: list[dict[str, str]],
    kind: str,
    prefix: str,
    reserved: set[str],
    warnings: list[str],
) -> tuple[FieldDef, ...]:
    # Column names must differ case-insensitively: Delta Lake and Parquet readers treat
    # info_DP and info_dp as the same column.
    taken = {name.lower() for name in reserved}
    seen: set[str] = set()
    fields: list[FieldDef] = []
    for attributes in declarations:
        key = attributes["ID"]
        if key in seen:
            warnings.append(
                f"{kind} {key} is declared more than once; the first declaration is used"
            )
            continue
        seen.add(key)
        base = prefix + _NOT_NAME_CHARACTER.sub("_", key)
        column, suffix = base, 1
        while column.lower() in taken:
            suffix += 1
            column = f"{base}_{suffix}"
        taken.add(column.lower())
        fields.append(
            FieldDef(
                id=key,
                number=attributes["Number"],
                type=attributes["Type"],
                description=attributes.get("Description"),
                column=column,
            )
        )
    return tuple(fields)
