"""Site profiles: how one laboratory's CSV export is laid out.

A profile names the site, the file's text encoding and delimiter (or ``'auto'``), the local
time zone and date-time formats, the decimal separator, the coding system of the test codes,
the map from the site's status words to HL7 table 0085 codes, and which CSV header holds each
logical field. Built-in profiles live as YAML files in ``connectors/lab_csv/sites/``; any
other profile can be loaded from a YAML file of the same shape or built in code.

Profiles are validated strictly: unknown keys are errors, so a misspelt key cannot silently
leave a column unread.
"""

import codecs
import os
import zoneinfo
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from connectors.errors import ConnectorError

HL7_RESULT_STATUSES = frozenset("CDFINOPRSUWX")
"""HL7 v2 table 0085 (observation result status) codes a status map may produce."""

VALUE_TYPES = frozenset({"NM", "ST"})
"""Value types a profile's ``value_types`` map may produce."""

DELIMITER_CANDIDATES = ",;|\t"
"""Delimiters ``'auto'`` chooses from."""

_SITES = "sites"


class UnknownSiteProfileError(ConnectorError):
    """A site profile name is neither a built-in profile nor the path of a YAML profile."""


class InvalidSiteProfileError(ConnectorError):
    """A site profile file cannot be read or does not meet the profile rules."""


class ColumnMap(BaseModel):
    """Which CSV header holds each logical field (headers match case-insensitively, trimmed).

    ``patient_id``, ``test_code`` and ``value`` are required; a reference range comes either
    from one ``reference_range`` column or from ``reference_low`` and ``reference_high``.
    Fields left out are null in every row. One header may feed several fields (a single
    ``DATE`` column as both ``collected_at`` and ``resulted_at``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    patient_id: str
    test_code: str
    value: str
    patient_id_authority: str | None = None
    accession: str | None = None
    placer_order: str | None = None
    message_id: str | None = None
    panel_code: str | None = None
    panel_display: str | None = None
    observation_sub_id: str | None = None
    test_display: str | None = None
    alt_code: str | None = None
    alt_system: str | None = None
    alt_display: str | None = None
    category: str | None = None
    value_type: str | None = None
    unit: str | None = None
    unit_system: str | None = None
    reference_range: str | None = None
    reference_low: str | None = None
    reference_high: str | None = None
    abnormal_flag: str | None = None
    result_status: str | None = None
    specimen_type: str | None = None
    collected_at: str | None = None
    resulted_at: str | None = None

    @field_validator("*")
    @classmethod
    def _header_is_not_blank(cls, header: str | None) -> str | None:
        if header is not None and not header.strip():
            raise ValueError("a header name must not be blank")
        return None if header is None else header.strip()

    @model_validator(mode="after")
    def _one_kind_of_reference_range(self) -> "ColumnMap":
        has_range = self.reference_range is not None
        has_low, has_high = self.reference_low is not None, self.reference_high is not None
        if has_range and (has_low or has_high):
            raise ValueError(
                "map either reference_range or reference_low and reference_high, not both"
            )
        if has_low != has_high:
            raise ValueError("reference_low and reference_high must be mapped together")
        return self

    def mapped(self) -> dict[str, str]:
        """The mapped fields and their headers, in field order."""
        return {name: header for name, header in self.model_dump().items() if header}


class SiteProfile(BaseModel):
    """How one site's LIS export is laid out.

    Attributes:
        site: the site code written to every row's ``site`` column.
        description: free text for people reading the profile.
        timezone: IANA zone of date-times written without an offset (``America/Denver``).
        delimiter: the field delimiter, or ``'auto'`` to sniff it among ``, ; | TAB``.
        encoding: a Python codec name, or ``'auto'``: a UTF-8 or UTF-16 byte order mark,
            else strict UTF-8, else cp1252.
        datetime_formats: strftime-style formats (as polars reads them) tried in order; ISO
            8601 with an offset or ``Z`` is always accepted after them.
        decimal_separator: ``'.'`` or ``','`` in values and reference limits.
        code_system: ``test_system`` of every row: ``'LN'`` when the code column holds LOINC,
            else the site's local system name.
        panel_code_system: ``panel_system`` of rows with a panel code; null when not given.
        default_category: ``category`` of rows whose category is blank or not mapped.
        statuses: site status text (matched case-insensitively, trimmed) -> HL7 0085 code.
        value_types: text of the ``value_type`` column -> ``'NM'`` or ``'ST'``.
        columns: which header holds each logical field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str
    description: str | None = None
    timezone: str
    delimiter: str = "auto"
    encoding: str = "auto"
    datetime_formats: list[str] = []
    decimal_separator: Literal[".", ","] = "."
    code_system: str
    panel_code_system: str | None = None
    default_category: str | None = None
    statuses: dict[str, str] = {}
    value_types: dict[str, str] = {}
    columns: ColumnMap

    @field_validator("site", "code_system")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("must not be blank")
        return text.strip()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("is not an IANA time zone name (e.g. America/New_York)") from exc
        return name

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, delimiter: str) -> str:
        if delimiter != "auto" and (len(delimiter) != 1 or delimiter in "\"\r\n"):
            raise ValueError("must be 'auto' or one character other than a quote or newline")
        return delimiter

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, encoding: str) -> str:
        if encoding == "auto":
            return encoding
        try:
            return codecs.lookup(encoding).name
        except LookupError as exc:
            raise ValueError("must be 'auto' or a Python codec name (utf-8, cp1252)") from exc

    @field_validator("datetime_formats")
    @classmethod
    def _formats_have_directives(cls, formats: list[str]) -> list[str]:
        for fmt in formats:
            if "%" not in fmt:
                raise ValueError("each format needs strftime directives such as %Y")
        return formats

    @field_validator("statuses")
    @classmethod
    def _statuses_are_hl7(cls, statuses: dict[str, str]) -> dict[str, str]:
        return _normalised_map(statuses, HL7_RESULT_STATUSES, "an HL7 table 0085 code")

    @field_validator("value_types")
    @classmethod
    def _value_types_known(cls, value_types: dict[str, str]) -> dict[str, str]:
        return _normalised_map(value_types, VALUE_TYPES, "'NM' or 'ST'")

    @model_validator(mode="after")
    def _consistent(self) -> "SiteProfile":
        if self.decimal_separator == "," and self.delimiter == ",":
            raise ValueError("a decimal comma needs a delimiter other than ','")
        if self.statuses and self.columns.result_status is None:
            raise ValueError("statuses are given but columns.result_status is not mapped")
        if self.columns.result_status is not None and not self.statuses:
            raise ValueError("columns.result_status is mapped but statuses is empty")
        if self.value_types and self.columns.value_type is None:
            raise ValueError("value_types are given but columns.value_type is not mapped")
        if self.columns.value_type is not None and not self.value_types:
            raise ValueError("columns.value_type is mapped but value_types is empty")
        return self


def _normalised_map(mapping: dict[str, str], allowed: frozenset[str], what: str) -> dict:
    """Keys trimmed and lower-cased (they match data that way); values checked."""
    normalised: dict[str, str] = {}
    for key, value in mapping.items():
        folded = key.strip().lower()
        if not folded:
            raise ValueError("keys must not be blank")
        if folded in normalised:
            raise ValueError(f"key {key!r} repeats another key apart from case or spaces")
        if value not in allowed:
            raise ValueError(f"value of {key!r} must be {what}")
        normalised[folded] = value
    return normalised


def builtin_profiles() -> list[str]:
    """Names of the built-in site profiles, sorted."""
    folder = resources.files(__package__) / _SITES
    return sorted(
        entry.name.removesuffix(".yaml") for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def load_profile(name_or_path: str | os.PathLike[str]) -> SiteProfile:
    """A built-in site profile by name, or a profile from a YAML file.

    Args:
        name_or_path: a built-in profile name (``'SITE-A01'``, see ``builtin_profiles()``), or
            the path of a YAML file with the keys of ``SiteProfile``.

    Returns:
        The validated profile.

    Raises:
        UnknownSiteProfileError: the name is not a built-in profile and no such file exists.
        InvalidSiteProfileError: the file cannot be read, is not YAML, or breaks a rule.
    """
    known = builtin_profiles()
    if isinstance(name_or_path, str) and name_or_path in known:
        entry = resources.files(__package__) / _SITES / f"{name_or_path}.yaml"
        return _parse(entry.read_text(encoding="utf-8"), f"built-in profile {name_or_path}")
    path = Path(name_or_path)
    if not path.is_file():
        raise UnknownSiteProfileError(
            f"{name_or_path} is neither a built-in site profile nor a profile file. Use one of: "
            f"{', '.join(known)}; or pass the path of a YAML profile."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSiteProfileError(
            f"{path} cannot be read as UTF-8 text. Check that the profile file is in place "
            "and readable."
        ) from exc
    return _parse(text, str(path))


def _parse(text: str, label: str) -> SiteProfile:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidSiteProfileError(
            f"{label} is not valid YAML. Fix the file's syntax (quote keys such as 'N' or "
            "'Y' that YAML would read as booleans)."
        ) from exc
    if not isinstance(document, dict):
        raise InvalidSiteProfileError(f"{label} must be a YAML mapping of profile keys.")
    try:
        return SiteProfile.model_validate(document)
    except ValidationError as exc:
        raise InvalidSiteProfileError(
            f"{label} is not a valid site profile: {describe_errors(exc)}."
        ) from exc


def describe_errors(exc: ValidationError) -> str:
    """Pydantic errors as 'location: message' pairs, without the offending input values."""
    parts = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "profile"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


def resolve_profile(site: str | os.PathLike[str] | SiteProfile) -> SiteProfile:
    """The profile a reader's ``site`` argument names (a profile is returned as is)."""
    if isinstance(site, SiteProfile):
        return site
    return load_profile(site)
