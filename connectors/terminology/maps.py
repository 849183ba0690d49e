"""Site maps: each lab's local test codes -> LOINC, versioned, in ``maps/<SITE>.yaml``.

A map file holds exactly::

    site: SITE-B07            # the file's own name
    version: "2026.09.1"      # YYYY.MM.N, quoted
    code_system: SITE-B07-LIS # the local coding system the codes belong to
    codes:
      "1001": {loinc: "14749-6", display: "Glucose [Moles/volume] in Serum or Plasma"}

Codes are strings (quote numeric ones), every LOINC must pass its check digit, and the
display is the LOINC long common name. A code a site sends that its map lacks is reported
as ``unmapped_code`` by ``mapping_report``; it is never guessed.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import yaml

from connectors.terminology.errors import SiteMapError
from connectors.terminology.loinc import is_valid_loinc

MAPS_DIR = Path(__file__).with_name("maps")
"""Folder of the packaged site maps."""

SITE_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
"""What a site code looks like (and so a map's file name)."""

_VERSION = re.compile(r"\d{4}\.\d{2}\.\d+")
_KEYS = {"site", "version", "code_system", "codes"}


@dataclass(frozen=True)
class MappedCode:
    """The LOINC code a local code maps to, with its long common name."""

    loinc: str
    display: str


@dataclass(frozen=True)
class SiteMap:
    """One site's local code -> LOINC map.

    Attributes:
        site: the site code, e.g. ``"SITE-B07"``.
        version: the map's version, e.g. ``"2026.09.1"``; recorded on every conformed row
            that consulted it.
        code_system: the local coding system of the codes.
        codes: local code -> ``MappedCode`` (read-only).
    """

    site: str
    version: str
    code_system: str
    codes: Mapping[str, MappedCode]

    def loinc_for(self, local_code: str) -> str | None:
        """The LOINC code of a local code, or None when the map lacks it."""
        mapped = self.codes.get(local_code)
        return None if mapped is None else mapped.loinc


def _fail(path: Path, why: str) -> SiteMapError:
    return SiteMapError(f"site map {path.name}: {why}. Fix the file and reload.")


def _nonempty_string(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip()) and value == value.strip()


def read_site_map(path: Path) -> SiteMap:
    """Read and check one map file.

    Args:
        path: a ``<SITE>.yaml`` file.

    Returns:
        The validated map.

    Raises:
        SiteMapError: when the file is not YAML, lacks or adds a top-level key, names
            another site than its file, has a version not like ``2026.09.1``, has no codes,
            a code that is not a non-empty string, an entry without exactly ``loinc`` and
            ``display``, or a LOINC code whose check digit is wrong.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _fail(path, "the file is not readable YAML") from exc
    if not isinstance(document, dict) or set(document) != _KEYS:
        raise _fail(path, f"the top level must have exactly the keys {sorted(_KEYS)}")
    if document["site"] != path.stem:
        raise _fail(path, "'site' must equal the file name without .yaml")
    version = document["version"]
    if not isinstance(version, str) or _VERSION.fullmatch(version) is None:
        raise _fail(path, "'version' must be a quoted string like \"2026.09.1\"")
    if not _nonempty_string(document["code_system"]):
        raise _fail(path, "'code_system' must be a non-empty string")
    codes = document["codes"]
    if not isinstance(codes, dict) or not codes:
        raise _fail(path, "'codes' must map at least one local code")
    entries: dict[str, MappedCode] = {}
    for local_code, entry in codes.items():
        if not _nonempty_string(local_code):
            raise _fail(path, "every local code must be a non-empty string (quote numbers)")
        if not isinstance(entry, dict) or set(entry) != {"loinc", "display"}:
            raise _fail(path, f"code {local_code!r} needs exactly 'loinc' and 'display'")
        if not is_valid_loinc(entry["loinc"]):
            raise _fail(path, f"code {local_code!r} maps to an invalid LOINC code")
        if not _nonempty_string(entry["display"]):
            raise _fail(path, f"code {local_code!r} needs a display")
        entries[local_code] = MappedCode(loinc=entry["loinc"], display=entry["display"])
    return SiteMap(
        site=document["site"],
        version=version,
        code_system=document["code_system"],
        codes=MappingProxyType(entries),
    )


@lru_cache(maxsize=64)
def _cached(site: str, directory: Path) -> SiteMap | None:
    path = directory / f"{site}.yaml"
    if not path.is_file():
        return None
    return read_site_map(path)


def load_site_map(site: str, *, directory: Path | None = None) -> SiteMap | None:
    """The map of one site, or None when the site has none.

    Args:
        site: the site code, e.g. ``"SITE-A01"``.
        directory: folder of map files; the packaged ``maps/`` by default.

    Returns:
        The validated ``SiteMap``, read once and cached; None when no file is there.

    Raises:
        SiteMapError: when ``site`` is not a site code (letters, digits, '-', '_') or the
            file breaks a rule (see ``read_site_map``).
    """
    if not isinstance(site, str) or SITE_CODE.fullmatch(site) is None:
        raise SiteMapError("a site code has only letters, digits, '-' and '_', e.g. 'SITE-A01'")
    return _cached(site, (directory or MAPS_DIR).resolve())


def available_site_maps(*, directory: Path | None = None) -> list[str]:
    """Site codes that have a map file, sorted."""
    folder = directory or MAPS_DIR
    return sorted(p.stem for p in folder.glob("*.yaml") if SITE_CODE.fullmatch(p.stem))
