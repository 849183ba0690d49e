"""Saved cohorts: named, versioned, append-only records under the lake's ``_cohorts`` folder.

A cohort saved as ``t2d-high-a1c`` gets version 1, the next save under that name version 2,
and so on; a version, once written, is never changed or removed by biofed. Each version is
one JSON file, ``_cohorts/<name>/<version>.json``, holding the definition (the criteria), the
members (research pseudonyms of the cohort's audience), the views and Delta versions it was
computed from, and two integrity hashes: ``sha256`` of the record itself and
``previous_sha256``, the hash of the version before it. A record whose hash does not match,
or whose predecessor's does not, is refused when read, so an edited file is never used.

Writes are atomic and exclusive: the record is written to a temporary file and linked to its
final name, which fails if another writer took that version first (the save then moves on
to the next version).
"""

import contextlib
import hashlib
import json
import os
import re
import secrets
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

COHORTS_DIR = "_cohorts"
NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,63}"
"""A cohort name: 1 to 64 lower-case letters, digits and dashes, not starting with a dash."""
REFERENCE_PATTERN = rf"{NAME_PATTERN}(?:@[1-9][0-9]{{0,8}})?"
"""A reference to a saved cohort: ``name`` (its latest version) or ``name@version``."""
COHORT_SCHEME = "cohort://"

_NAME = re.compile(NAME_PATTERN)
_REFERENCE = re.compile(rf"(?P<name>{NAME_PATTERN})(?:@(?P<version>[1-9][0-9]{{0,8}}))?")
_VERSION_FILE = re.compile(r"([1-9][0-9]{0,8})\.json")
_MAX_RECORD_BYTES = 64 * 1024 * 1024
_SAVE_ATTEMPTS = 20


class CohortStoreError(Exception):
    """A saved cohort cannot be written or read; the message says what to do."""


class CohortIntegrityError(CohortStoreError):
    """A saved cohort's record (or its predecessor's) does not match its integrity hash."""


class SavedCohort(BaseModel):
    """One version of a saved cohort."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=rf"^{NAME_PATTERN}$")
    version: int = Field(ge=1)
    created_at: datetime
    audience: str
    """The audience whose pseudonyms the members are."""
    created_by_role: str
    purpose: str
    """The purpose of use the cohort was computed under (its consent scope applied)."""
    definition: dict[str, Any]
    """The criteria, as the cohort tool accepted them."""
    datasets: list[str]
    """The views the criteria read, the person register first."""
    columns: dict[str, list[str]]
    """Per view, the columns the criteria read: deciding who may see the members."""
    delta_versions: dict[str, int]
    consent_version: int
    """The version of the audience's consent table the members were filtered by."""
    min_cell_size: int = Field(ge=2)
    members: list[str]
    """Research pseudonyms, sorted."""
    previous_sha256: str | None
    sha256: str

    @property
    def uri(self) -> str:
        """``cohort://<name>/<version>``."""
        return cohort_uri(self.name, self.version)


def cohort_uri(name: str, version: int | None = None) -> str:
    """The resource URI of a saved cohort (its latest version when ``version`` is None)."""
    return f"{COHORT_SCHEME}{name}" if version is None else f"{COHORT_SCHEME}{name}/{version}"


def valid_name(name: object) -> bool:
    """Whether ``name`` is a valid cohort name."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def parse_reference(reference: str) -> tuple[str, int | None]:
    """Split ``name`` or ``name@version``.

    Args:
        reference: the text given.

    Returns:
        The name and the version (None for the latest).

    Raises:
        ValueError: when the reference is not of that form (the message has no value).
    """
    match = _REFERENCE.fullmatch(reference) if isinstance(reference, str) else None
    if match is None:
        raise ValueError(
            "a cohort reference is a name (lower-case letters, digits and dashes) or name@version"
        )
    version = match.group("version")
    return match.group("name"), int(version) if version else None


def record_sha256(fields: dict[str, Any]) -> str:
    """The integrity hash of a record: sha256 of its canonical JSON without ``sha256``."""
    body = {key: value for key, value in fields.items() if key != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class CohortStore:
    """The saved cohorts of one lake (a local folder)."""

    def __init__(self, root: Path) -> None:
        """Args:
        root: the ``_cohorts`` folder (created on the first save).
        """
        self.root = root
        self._lock = threading.Lock()

    @classmethod
    def for_lake(cls, lake: str | Path) -> "CohortStore | None":
        """The store of a lake; None for a lake on object storage (saving is not offered)."""
        if isinstance(lake, str) and "://" in lake:
            return None
        return cls(Path(lake).expanduser().resolve() / COHORTS_DIR)

    def versions(self, name: str) -> list[int]:
        """The saved versions of ``name``, ascending (empty for an unknown or invalid name)."""
        if not valid_name(name):
            return []
        folder = self.root / name
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        found = (_VERSION_FILE.fullmatch(entry) for entry in names)
        return sorted(int(match.group(1)) for match in found if match is not None)

    def load(self, name: str, version: int | None = None) -> SavedCohort | None:
        """One version of a saved cohort (the latest when ``version`` is None).

        Args:
            name: the cohort name.
            version: the version, or None.

        Returns:
            The verified record, or None when there is no such cohort or version.

        Raises:
            CohortIntegrityError: when the record or its predecessor fails its hash check, or
                the file does not hold a record of that name and version.
        """
        if not valid_name(name):
            return None
        if version is None:
            versions = self.versions(name)
            if not versions:
                return None
            version = versions[-1]
        record = self._read(name, version)
        if record is None:
            return None
        expected_previous = None
        if version > 1:
            previous = self._read(name, version - 1)
            if previous is None:
                raise CohortIntegrityError(
                    "a saved cohort's earlier version is missing; the cohort cannot be used"
                )
            expected_previous = previous.sha256
        if record.previous_sha256 != expected_previous:
            raise CohortIntegrityError(
                "a saved cohort does not follow on from its earlier version; it cannot be used"
            )
        return record

    def _read(self, name: str, version: int) -> SavedCohort | None:
        path = self.root / name / f"{version}.json"
        try:
            with open(path, "rb") as handle:
                raw = handle.read(_MAX_RECORD_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CohortStoreError("a saved cohort could not be read") from exc
        if len(raw) > _MAX_RECORD_BYTES:
            raise CohortIntegrityError("a saved cohort record is larger than any biofed writes")
        try:
            fields = json.loads(raw)
            record = SavedCohort.model_validate(fields)
        except (ValueError, ValidationError):
            raise CohortIntegrityError(
                "a saved cohort record is not valid JSON of a record"
            ) from None
        if record.name != name or record.version != version:
            raise CohortIntegrityError("a saved cohort record is stored under another name")
        if record_sha256(fields) != record.sha256:
            raise CohortIntegrityError("a saved cohort record does not match its integrity hash")
        return record

    def save(self, name: str, **fields: Any) -> SavedCohort:
        """Append the next version of ``name``.

        Args:
            name: the cohort name.
            **fields: every other field of :class:`SavedCohort` except ``version``,
                ``previous_sha256`` and ``sha256``.

        Returns:
            The record as written.

        Raises:
            ValueError: for an invalid name.
            CohortIntegrityError: when the latest existing version fails its hash check.
            CohortStoreError: when the record cannot be written.
        """
        if not valid_name(name):
            raise ValueError("invalid cohort name")
        folder = self.root / name
        with self._lock:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CohortStoreError("the saved cohorts folder cannot be written") from exc
            for _ in range(_SAVE_ATTEMPTS):
                latest = self.load(name)
                version = 1 if latest is None else latest.version + 1
                draft = {
                    **fields,
                    "name": name,
                    "version": version,
                    "previous_sha256": None if latest is None else latest.sha256,
                    "sha256": "",
                }
                payload = SavedCohort.model_validate(draft).model_dump(mode="json")
                payload["sha256"] = record_sha256(payload)
                record = SavedCohort.model_validate(payload)
                if self._write_new(folder / f"{version}.json", payload):
                    return record
        raise CohortStoreError("the cohort could not be saved: too many concurrent saves")

    @staticmethod
    def _write_new(path: Path, payload: dict[str, Any]) -> bool:
        """Write ``path`` only if it does not exist yet (False when another writer won)."""
        text = json.dumps(payload, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                return False
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            return True
        except OSError as exc:
            raise CohortStoreError("the cohort could not be saved") from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
