"""What a source names: files of a folder (recursively), members of zip archives, one file.

Listing happens in the caller's process, in a stable order (names sorted at each level),
lazily so that reading starts before a large folder is listed. Names starting with '.' are
skipped (and '__MACOSX' in archives); links to files are read, links to folders are not
followed (``os.walk``'s default, which keeps a link loop from listing forever). Reading a
file's bytes happens in the worker that parses it; a worker keeps the zip it last read open.
"""

import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import NamedTuple

BAD_ZIP = "not a readable zip archive"
NESTED_ZIP = "a zip archive inside a zip archive is not read"
ENCRYPTED = "zip member is encrypted"
UNSUPPORTED_METHOD = "zip member uses a compression method that cannot be read"
CORRUPT_MEMBER = "zip member cannot be extracted: the archive is corrupt"
UNREADABLE = "file cannot be read"


class FileRef(NamedTuple):
    """One file to read.

    Attributes:
        label: the ``source_file`` value.
        path: the file, or the zip archive holding it.
        member: the member's name inside the archive, or None for a plain file.
    """

    label: str
    path: str
    member: str | None


class ListingReject(NamedTuple):
    """Something named by the source that cannot even be listed (an unreadable zip)."""

    label: str
    reason: str


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _is_zip_name(name: str) -> bool:
    return name.lower().endswith(".zip")


def iter_source(source: Path) -> Iterator[FileRef | ListingReject]:
    """List the files of a source in a stable order.

    Args:
        source: a file, a folder, or a zip archive (by its .zip suffix).

    Yields:
        ``FileRef`` for each file to read; ``ListingReject`` for each zip archive that
        cannot be opened.
    """
    if source.is_file():
        if _is_zip_name(source.name):
            yield from _zip_members(source, source.name)
        else:
            yield FileRef(source.name, str(source), None)
        return
    yield from _walk(str(source), "")


def _walk(folder: str, prefix: str) -> Iterator[FileRef | ListingReject]:
    # Strings and one scandir per folder: pathlib objects per file cost the parent process
    # a third of its time on a PACS export of thousands of one-file folders, next to the
    # workers on the same cores.
    try:
        with os.scandir(folder) as entries:
            listed = sorted((e.name, e.path, e.is_dir(follow_symlinks=False)) for e in entries)
    except OSError:
        yield ListingReject(prefix.rstrip("/") or ".", UNREADABLE)
        return
    # A folder's files first, then its subfolders, each in name order.
    for name, path, is_dir in listed:
        if is_dir or _hidden(name):
            continue
        if _is_zip_name(name):
            yield from _zip_members(Path(path), prefix + name)
        else:
            yield FileRef(prefix + name, path, None)
    for name, path, is_dir in listed:
        if is_dir and not _hidden(name):
            yield from _walk(path, prefix + name + "/")


def _zip_members(path: Path, label: str) -> Iterator[FileRef | ListingReject]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(
                info.filename
                for info in archive.infolist()
                if not info.is_dir()
                and not any(
                    _hidden(part) or part == "__MACOSX" for part in info.filename.split("/")
                )
            )
    except (OSError, zipfile.BadZipFile):
        yield ListingReject(label, BAD_ZIP)
        return
    for name in names:
        yield FileRef(f"{label}!{PurePosixPath(name).as_posix()}", str(path), name)


class ReadError(Exception):
    """A file's bytes cannot be had; ``reason`` is a fixed sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ZipCache:
    """Keeps the zip archive read last open, since members of one archive come in a row."""

    def __init__(self) -> None:
        self._path: str | None = None
        self._archive: zipfile.ZipFile | None = None

    def read(self, ref: FileRef) -> bytes:
        """The bytes of a file or zip member.

        Args:
            ref: what to read.

        Returns:
            The whole file.

        Raises:
            ReadError: the file cannot be read, or the member is nested, encrypted or corrupt.
        """
        if ref.member is None:
            try:
                with open(ref.path, "rb") as handle:
                    return handle.read()
            except OSError as exc:
                raise ReadError(UNREADABLE) from exc
        if _is_zip_name(ref.member):
            raise ReadError(NESTED_ZIP)
        try:
            archive = self._archive
            if archive is None or self._path != ref.path:
                self.close()
                archive = self._archive = zipfile.ZipFile(ref.path)
                self._path = ref.path
            return archive.read(ref.member)
        except NotImplementedError as exc:
            raise ReadError(UNSUPPORTED_METHOD) from exc
        except RuntimeError as exc:  # zipfile's signal for a password-protected member
            raise ReadError(ENCRYPTED) from exc
        except (
            OSError,
            zipfile.BadZipFile,
            zlib.error,
            KeyError,
            EOFError,
            ValueError,
        ) as exc:
            raise ReadError(CORRUPT_MEMBER) from exc

    def close(self) -> None:
        """Close the archive held open, if any."""
        if self._archive is not None:
            self._archive.close()
        self._archive = None
        self._path = None
