"""De-identification transforms: pure functions over polars frames.

Each takes a frame and returns a new one; none reads the lake or the clock (the reference
date for ages is an argument), so a view is reproducible from its inputs and keys.
"""

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Literal

import polars as pl
import yaml

MAX_SHIFT_DAYS = 365
"""Dates move by a per-person whole number of days in [-365, 365], never 0."""

AGE_CAP = 90
"""Safe Harbor: ages over 89 are grouped into one 90+ category."""


def keyed_hash(
    key: bytes, values: Sequence[str | None], *, prefix: str, length: int = 20
) -> list[str | None]:
    """HMAC-SHA256 pseudonyms: stable for one key, unlinkable without it.

    Args:
        key: the audience's pseudonym key.
        values: identifiers to pseudonymise; nulls stay null.
        prefix: a short tag naming the kind of identifier (``P`` person, ``E`` encounter).
        length: hex characters kept from the digest.

    Returns:
        One pseudonym per value, ``<prefix>-<hex>``.
    """
    tag = prefix.encode() + b":"
    return [
        None
        if v is None
        else f"{prefix}-{hmac.new(key, tag + v.encode(), hashlib.sha256).hexdigest()[:length]}"
        for v in values
    ]


def pseudonymise(
    frame: pl.DataFrame, column: str, *, key: bytes, prefix: str, alias: str
) -> pl.DataFrame:
    """Replace an identifier column by its keyed pseudonym under a new name.

    Args:
        frame: the input frame.
        column: the identifier column (dropped).
        key: the audience's pseudonym key.
        prefix: the pseudonym tag.
        alias: the name of the pseudonym column.

    Returns:
        The frame with ``alias`` in place of ``column``.
    """
    values = frame.get_column(column).cast(pl.String()).to_list()
    pseudonyms = pl.Series(alias, keyed_hash(key, values, prefix=prefix), dtype=pl.String())
    position = frame.columns.index(column)
    return frame.drop(column).insert_column(position, pseudonyms)


PERSON_PREFIX = "P"
"""Tag of person pseudonyms, in every view and in the consent table, so they join."""

PseudonymScheme = Literal["keyed", "surrogate"]
"""``keyed``: HMAC of the identifier under the audience's key (stable, recomputable by the key
holder). ``surrogate``: a random value per identifier, kept in a restricted mapping table
(nothing about the identifier is in it; unlinkable even with every key)."""

SURROGATE_SCHEMA = {"prefix": pl.String(), "identifier": pl.String(), "surrogate": pl.String()}
SURROGATE_HEX = 20
"""Hex characters of a random surrogate: the same shape as a keyed pseudonym."""


def new_surrogates(wanted: pl.DataFrame, existing: pl.DataFrame) -> pl.DataFrame:
    """Random surrogates for the ``(prefix, identifier)`` pairs that have none yet.

    Args:
        wanted: ``prefix``, ``identifier`` pairs (duplicates and nulls allowed).
        existing: the mapping so far (:data:`SURROGATE_SCHEMA`).

    Returns:
        New mapping rows only, ``<prefix>-<20 random hex>``, distinct from every existing
        surrogate.
    """
    missing = (
        wanted.drop_nulls()
        .unique()
        .join(existing.select("prefix", "identifier"), on=["prefix", "identifier"], how="anti")
        .sort("prefix", "identifier")
    )
    taken = set(existing.get_column("surrogate").to_list())
    surrogates = []
    for prefix in missing.get_column("prefix").to_list():
        value = f"{prefix}-{secrets.token_hex(SURROGATE_HEX // 2)}"
        while value in taken:  # pragma: no cover - 80 random bits
            value = f"{prefix}-{secrets.token_hex(SURROGATE_HEX // 2)}"
        taken.add(value)
        surrogates.append(value)
    return missing.with_columns(pl.Series("surrogate", surrogates, dtype=pl.String())).select(
        list(SURROGATE_SCHEMA)
    )


@dataclass(frozen=True)
class Pseudonyms:
    """How one audience's identifiers become pseudonyms: keyed, or random surrogates."""

    key: bytes | None = None
    """The audience's pseudonym key (keyed scheme)."""
    surrogates: pl.DataFrame | None = None
    """The mapping (surrogate scheme), :data:`SURROGATE_SCHEMA`."""

    def apply(self, frame: pl.DataFrame, column: str, *, prefix: str, alias: str) -> pl.DataFrame:
        """Replace an identifier column by its pseudonym under a new name.

        Raises:
            ValueError: under the surrogate scheme, when an identifier has no surrogate yet
                (materialise the audience's surrogate table first).
        """
        if self.surrogates is None:
            if self.key is None:
                raise ValueError("a keyed scheme needs a key")
            return pseudonymise(frame, column, key=self.key, prefix=prefix, alias=alias)
        mapping = self.surrogates.filter(pl.col("prefix") == prefix).select(
            pl.col("identifier").alias(column), pl.col("surrogate").alias(alias)
        )
        position = frame.columns.index(column)
        joined = frame.with_columns(pl.col(column).cast(pl.String())).join(
            mapping, on=column, how="left", maintain_order="left"
        )
        if joined.get_column(alias).null_count() > frame.get_column(column).null_count():
            raise ValueError(
                "some identifiers have no surrogate yet; materialise the audience's surrogate "
                "table before its views"
            )
        pseudonyms = joined.get_column(alias)
        return frame.drop(column).insert_column(position, pseudonyms)


def date_shifts(person_keys: Iterable[str], *, key: bytes) -> pl.DataFrame:
    """The per-person date shift in days, derived from a secret so it is stable across runs.

    Args:
        person_keys: the people to compute shifts for.
        key: the date-shift key.

    Returns:
        A frame ``person_key``, ``shift_days`` (Int32, never 0).
    """
    keys = sorted(set(person_keys))
    shifts = []
    for person in keys:
        digest = hmac.new(key, b"shift:" + person.encode(), hashlib.sha256).digest()
        magnitude = int.from_bytes(digest[:4], "big") % MAX_SHIFT_DAYS + 1
        shifts.append(magnitude if digest[4] & 1 else -magnitude)
    return pl.DataFrame(
        {"person_key": keys, "shift_days": shifts},
        schema={"person_key": pl.String(), "shift_days": pl.Int32()},
    )


def shift_dates(
    frame: pl.DataFrame,
    columns: Sequence[str],
    shifts: pl.DataFrame,
    *,
    person_column: str = "person_key",
) -> pl.DataFrame:
    """Move every date and datetime column by the person's shift, keeping intervals.

    Args:
        frame: rows with ``person_column``.
        columns: the date / datetime columns to shift.
        shifts: the output of :func:`date_shifts`, covering every person in ``frame``.
        person_column: the person column to join on.

    Returns:
        The frame with shifted columns, same row order.

    Raises:
        ValueError: when a person has no shift (the shift table is incomplete).
    """
    joined = frame.join(
        shifts.rename({"person_key": person_column}),
        on=person_column,
        how="left",
        maintain_order="left",
    )
    if joined.get_column("shift_days").null_count() > frame.get_column(person_column).null_count():
        raise ValueError("date shifts are missing for some people; compute them for every person")
    offset = pl.duration(days=pl.col("shift_days"))
    return joined.with_columns((pl.col(c) + offset).alias(c) for c in columns).drop("shift_days")


def birth_year_and_cap(
    frame: pl.DataFrame, *, birth_column: str = "birth_date", reference: date
) -> pl.DataFrame:
    """Reduce birth dates to years, and group people aged 90 or more.

    People whose age at ``reference`` is ``AGE_CAP`` or more get a null birth year and
    ``age_90_plus = true``; a year of birth would otherwise reveal an age over 89.

    Args:
        frame: rows with a Date column ``birth_column`` (dropped).
        reference: the date ages are computed at (the materialisation date).

    Returns:
        The frame with ``birth_year`` (Int32) and ``age_90_plus`` (Boolean).
    """
    birth = pl.col(birth_column)
    had_birthday = (birth.dt.month() < reference.month) | (
        (birth.dt.month() == reference.month) & (birth.dt.day() <= reference.day)
    )
    age = pl.lit(reference.year) - birth.dt.year() - pl.when(had_birthday).then(0).otherwise(1)
    capped = age >= AGE_CAP
    position = frame.columns.index(birth_column)
    out = frame.with_columns(
        pl.when(capped).then(None).otherwise(birth.dt.year()).cast(pl.Int32()).alias("birth_year"),
        capped.alias("age_90_plus"),
    )
    columns = [c for c in out.columns if c not in (birth_column, "birth_year", "age_90_plus")]
    columns[position:position] = ["birth_year", "age_90_plus"]
    return out.select(columns)


@cache
def restricted_zip3(path: Path | None = None) -> tuple[str, frozenset[str]]:
    """The versioned list of restricted 3-digit ZIP prefixes.

    Returns:
        ``(version, prefixes)`` from ``restricted_zip3.yaml`` (or ``path``).
    """
    path = path or Path(__file__).with_name("restricted_zip3.yaml")
    data = yaml.safe_load(path.read_text())
    return str(data["version"]), frozenset(str(p) for p in data["prefixes"])


def zip3(
    frame: pl.DataFrame,
    column: str = "postal_code",
    *,
    alias: str = "zip3",
    restricted: frozenset[str] | None = None,
) -> pl.DataFrame:
    """Truncate ZIP codes to their first three digits; restricted prefixes become ``000``.

    Values that are not US ZIP codes (fewer than 3 leading digits) become null.

    Args:
        frame: rows with a string postal code column (dropped).
        column: the postal code column.
        alias: the output column.
        restricted: prefixes to report as ``000``; defaults to the versioned list.

    Returns:
        The frame with ``alias`` in place of ``column``.
    """
    restricted = restricted if restricted is not None else restricted_zip3()[1]
    prefix = pl.col(column).str.extract(r"^(\d{3})", 1)
    expr = (
        pl.when(prefix.is_in(list(restricted))).then(pl.lit("000")).otherwise(prefix).alias(alias)
    )
    position = frame.columns.index(column)
    return (
        frame.with_columns(expr)
        .drop(column)
        .select(
            [
                *[c for c in frame.columns if c != column][:position],
                alias,
                *[c for c in frame.columns if c != column][position:],
            ]
        )
    )
