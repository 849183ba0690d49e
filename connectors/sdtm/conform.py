"""One fixed row shape per standard domain, whatever columns the source files had."""

import polars as pl

from connectors.sdtm.schema import PROVENANCE
from connectors.sdtm.standard import STANDARD_VARIABLES, StandardVariable

_DTYPES = {"Char": pl.String(), "Num": pl.Float64()}
# Integral numbers below this magnitude are written without a decimal point.
_INTEGRAL_LIMIT = 1e15


def conformed_schema(domain: str) -> dict[str, pl.DataType]:
    """Column name -> dtype of ``conform_domain``'s output for a domain.

    Args:
        domain: a domain code of ``STANDARD_VARIABLES``, in any case.

    Returns:
        The standard variables in lower case and IG order (Char -> String, Num ->
        Float64), then ``record_json``, ``source_file``, ``source_locator``, ``dataset``.

    Raises:
        ValueError: the domain is not one of ``STANDARD_VARIABLES``.
    """
    standard = _standard(domain)
    schema = {variable.name.lower(): _DTYPES[variable.type] for variable in standard}
    schema["record_json"] = pl.String()
    schema.update({name: pl.String() for name in PROVENANCE})
    return schema


def conform_domain(frame: pl.DataFrame, domain: str) -> pl.DataFrame:
    """Rows of one domain in the standard shape, with every original variable kept as JSON.

    Args:
        frame: a domain table of ``read_sdtm`` (SDTM variables in upper case, String or
            Float64, plus ``source_file``, ``source_locator``, ``dataset``); rows of several
            files with different variables are fine.
        domain: the domain code (``"LB"`` or ``"lb"``), one of ``STANDARD_VARIABLES``.

    Returns:
        Exactly ``conformed_schema(domain)``: each standard variable of the frame cast to
        its standard type (a Char value that is not a number becomes null in a Num
        variable; a whole number in a Char variable is written without a decimal point),
        a missing one null; ``record_json`` a JSON object of every variable of the row as
        in the frame (numbers as numbers, null variables left out); the provenance
        columns as given (null when the frame has none).

    Raises:
        ValueError: the domain is not one of ``STANDARD_VARIABLES``.
    """
    standard = _standard(domain)
    by_name = {name.upper(): name for name in frame.columns if name not in PROVENANCE}
    columns = []
    for variable in standard:
        source = by_name.get(variable.name)
        if source is None:
            column = pl.lit(None, _DTYPES[variable.type])
        elif variable.type == "Num":
            column = _as_number(pl.col(source), frame.schema[source])
        else:
            column = _as_text(pl.col(source), frame.schema[source])
        columns.append(column.alias(variable.name.lower()))
    columns.append(record_json(frame, list(by_name.values())).alias("record_json"))
    columns.extend(
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(pl.String).alias(name)
        for name in PROVENANCE
    )
    return frame.select(columns)


def record_json(frame: pl.DataFrame, variables: list[str]) -> pl.Expr:
    """A JSON object per row of the given variables, in order, null ones left out.

    Args:
        frame: the frame the expression will run on (for its dtypes).
        variables: the columns to write.

    Returns:
        A String expression; ``{}`` for a row whose variables are all null. Whole numbers
        are written without a decimal point (``1``, not ``1.0``).
    """
    members = []
    for name in variables:
        dtype = frame.schema[name]
        if dtype == pl.Null:
            continue
        member = pl.struct(pl.col(name)).struct.json_encode().str.slice(1).str.strip_suffix("}")
        if dtype.is_float():
            member = member.str.replace(r"\.0$", "")
        members.append(pl.when(pl.col(name).is_not_null()).then(member))
    if not members:
        return pl.lit("{}", pl.String())
    body = pl.concat_str(members, separator=",", ignore_nulls=True).fill_null("")
    return pl.concat_str(pl.lit("{"), body, pl.lit("}"))


def _standard(domain: str) -> tuple[StandardVariable, ...]:
    code = domain.upper()
    if code not in STANDARD_VARIABLES:
        raise ValueError(f"domain must be one of: {', '.join(sorted(STANDARD_VARIABLES))}")
    return STANDARD_VARIABLES[code]


def _as_number(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.String:
        number = column.str.strip_chars().cast(pl.Float64(), strict=False)
    else:
        number = column.cast(pl.Float64(), strict=False)
    return pl.when(number.is_finite()).then(number)


def _as_text(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if not dtype.is_numeric():
        return column.cast(pl.String)
    number = column.cast(pl.Float64())
    whole = (number == number.round(0)) & (number.abs() < _INTEGRAL_LIMIT)
    return (
        pl.when(whole)
        .then(number.cast(pl.Int64(), strict=False).cast(pl.String))
        .otherwise(number.cast(pl.String))
    )
