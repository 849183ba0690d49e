"""Files in a landing folder: what arrived, with its hash, size and modification time."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_with_suffixes(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Files below ``folder`` whose names end with one of ``suffixes``, sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(tuple(suffixes)))


@dataclass(frozen=True)
class LandingFile:
    """One file in the landing folder, as found now."""

    path: Path
    source_file: str
    """Path relative to the silo's landing folder: the name provenance columns carry."""
    sha256: str
    bytes: int
    modified_at: datetime
    """When the source system last wrote the file: what freshness is measured from."""


def landing_file(path: Path, folder: Path) -> LandingFile:
    """One landing file with its hash, size and modification time."""
    stat = path.stat()
    return LandingFile(
        path,
        path.relative_to(folder).as_posix(),
        sha256_file(path),
        stat.st_size,
        datetime.fromtimestamp(stat.st_mtime, tz=UTC),
    )


def scan_files(folder: Path, suffixes: Sequence[str]) -> list[LandingFile]:
    """Every file below ``folder`` with one of ``suffixes``, with hash, size and time."""
    return [landing_file(path, folder) for path in files_with_suffixes(folder, suffixes)]
