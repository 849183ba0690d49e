"""The bytes of a VCF file: how it is stored, its header lines, then its text in blocks.

Compression is recognised by magic bytes, whatever the file name says: BGZF and plain gzip
are inflated with zlib (in a background thread, which zlib and hashlib let run without the
GIL), BCF is decoded to a temporary text VCF by the bcftools bundled with pysam, and
anything else is read as text. The SHA-256 is taken over the bytes as stored while they are
read.
"""

import contextlib
import hashlib
import os
import queue
import shutil
import struct
import tempfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Generic, Literal, TypeVar

from connectors.errors import SourceNotFoundError, UnsupportedFormatError

Compression = Literal["bgzf", "gzip", "none", "bcf"]
T = TypeVar("T")

_GZIP_MAGIC = b"\x1f\x8b"
_BGZF_MAGIC = b"\x1f\x8b\x08\x04"
_BGZF_HEADER = 18
_BCF_MAGIC = b"BCF\x02"
_VCF_MAGIC = b"##fileformat=VCF"
_BOM = b"\xef\xbb\xbf"
_READ_SIZE = 1 << 20
_QUEUE_DEPTH = 8
_HEADER_LIMIT = 1 << 30


class CorruptStreamError(Exception):
    """The compressed stream ends early or is not valid gzip data."""


def detect_compression(path: Path) -> Compression:
    """How the file is stored, from its first bytes.

    Args:
        path: the file.

    Returns:
        ``bcf`` (compressed or not), ``bgzf``, ``gzip``, or ``none`` for anything else.

    Raises:
        SourceNotFoundError: the file cannot be read.
    """
    try:
        with open(path, "rb") as stream:
            head = stream.read(1 << 16)
    except OSError as exc:
        raise unreadable(path, exc) from exc
    if head.startswith(_BCF_MAGIC):
        return "bcf"
    if not head.startswith(_GZIP_MAGIC):
        return "none"
    try:
        first = zlib.decompressobj(31).decompress(head, 4)
    except zlib.error:
        first = b""
    if first.startswith(_BCF_MAGIC):
        return "bcf"
    # BGZF: a gzip member with the FEXTRA flag and a 'BC' extra subfield (SAM spec 4.1).
    is_bgzf = len(head) >= 18 and head[3] & 4 and head[12:14] == b"BC"
    return "bgzf" if is_bgzf else "gzip"


def detect_index(path: Path) -> str | None:
    """Which index lies beside the file.

    Args:
        path: the file.

    Returns:
        ``tbi`` or ``csi`` when ``<file>.tbi`` / ``<file>.csi`` exists (``tbi`` first),
        else None.
    """
    for kind in ("tbi", "csi"):
        if Path(f"{path}.{kind}").is_file():
            return kind
    return None


def unreadable(path: Path, exc: OSError) -> SourceNotFoundError:
    """The error for a file that exists but cannot be read.

    Args:
        path: the file.
        exc: the operating system's error (only its strerror is quoted).

    Returns:
        The error to raise, chained from ``exc`` by the caller.
    """
    return SourceNotFoundError(
        f"{path} cannot be read ({exc.strerror or type(exc).__name__}). Check that the file "
        "is in place and readable by this process."
    )


class TextStream:
    """Decompressed text of one file in blocks, hashing the stored bytes as they are read.

    BGZF blocks are cut by the block size in their header and inflated one by one (each
    checked against its CRC-32 and length); other gzip data is inflated member by member.
    Not thread-safe: one thread at a time calls ``read_block`` (the header is read in the
    caller's thread, the body in a ``Prefetcher``'s).
    """

    def __init__(self, path: Path, *, compression: Compression, hash_bytes: bool) -> None:
        try:
            self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise unreadable(path, exc) from exc
        self._mode = compression
        self._inflater = zlib.decompressobj(31)
        self._inside_member = False
        self._pending = b""
        self._hasher = hashlib.sha256() if hash_bytes else None
        self.size_bytes = 0

    @property
    def sha256(self) -> str | None:
        """Hex SHA-256 of the bytes read so far, or None when not hashing."""
        return None if self._hasher is None else self._hasher.hexdigest()

    def read_block(self) -> bytes:
        """The next block of text; ``b""`` at the end of the file.

        Raises:
            CorruptStreamError: the gzip data is truncated or invalid.
            OSError: the file cannot be read.
        """
        while True:
            raw = self._file.read(_READ_SIZE)
            self.size_bytes += len(raw)
            if self._hasher is not None and raw:
                self._hasher.update(raw)
            if not raw:
                if self._pending or self._inside_member:
                    raise CorruptStreamError("the compressed stream ends inside a gzip member")
                return b""
            if self._mode == "bgzf":
                text = self._inflate_bgzf(raw)
            elif self._mode == "gzip":
                text = self._inflate(raw)
            else:
                return raw
            if text:
                return text

    def _inflate_bgzf(self, raw: bytes) -> bytes:
        data = self._pending + raw if self._pending else raw
        view = memoryview(data)
        pieces = []
        offset, end = 0, len(data)
        while end - offset >= _BGZF_HEADER:
            size = _bgzf_block_size(view, offset)
            if size is None:
                # Not a BGZF block (gzip members appended to a BGZF file): inflate the rest
                # as plain gzip.
                self._mode = "gzip"
                pieces.append(self._inflate(bytes(view[offset:])))
                offset = end
                break
            if end - offset < size:
                break
            extra = int.from_bytes(view[offset + 10 : offset + 12], "little")
            crc, length = struct.unpack_from("<II", view, offset + size - 8)
            try:
                text = zlib.decompress(
                    view[offset + 12 + extra : offset + size - 8], -15, max(length, 1)
                )
            except zlib.error as exc:
                raise CorruptStreamError("a BGZF block is not valid deflate data") from exc
            if len(text) != length or zlib.crc32(text) != crc:
                raise CorruptStreamError("a BGZF block fails its CRC-32 or length check")
            pieces.append(text)
            offset += size
        self._pending = bytes(view[offset:])
        view.release()
        return b"".join(pieces)

    def _inflate(self, data: bytes) -> bytes:
        pieces = []
        while data:
            if not self._inside_member:
                # Gzip files may be padded with zeros after the last member.
                data = data.lstrip(b"\x00")
                if not data:
                    break
            try:
                pieces.append(self._inflater.decompress(data))
            except zlib.error as exc:
                raise CorruptStreamError("the data is not a valid gzip stream") from exc
            if self._inflater.eof:
                data = self._inflater.unused_data
                self._inflater = zlib.decompressobj(31)
                self._inside_member = False
            else:
                self._inside_member = True
                data = b""
        return b"".join(pieces)

    def close(self) -> None:
        """Close the file; further reads fail."""
        self._file.close()


def _bgzf_block_size(view: memoryview, offset: int) -> int | None:
    """The total size of the BGZF block at ``offset``, or None when it is not one."""
    if view[offset : offset + 4] != _BGZF_MAGIC:
        return None
    extra = int.from_bytes(view[offset + 10 : offset + 12], "little")
    position, stop = offset + 12, offset + 12 + extra
    while position + 4 <= stop and position + 4 <= len(view):
        length = int.from_bytes(view[position + 2 : position + 4], "little")
        if view[position : position + 2] == b"BC" and length == 2:
            return int.from_bytes(view[position + 4 : position + 6], "little") + 1
        position += 4 + length
    return None


class Prefetcher(Generic[T]):
    """Runs an iterator in a background thread, a bounded number of items ahead.

    Iterating the prefetcher gives the iterator's items, then raises what it raised. The
    thread holds the iterator and a queue only, never the reader that owns them, so a
    dropped reader is collected and stops it.
    """

    def __init__(self, items: Iterator[T], depth: int) -> None:
        self._items = items
        self._queue: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vcf-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((True, item)):
                    return
            self._put((False, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put((False, exc))

    def _put(self, item: tuple[bool, object]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            is_item, value = self._queue.get()
            if is_item:
                yield value  # type: ignore[misc]
            elif isinstance(value, BaseException):
                raise value
            else:
                return

    def stop(self) -> None:
        """Stop the thread and wait for it; safe to call more than once."""
        self._stop.set()
        while self._thread.is_alive():
            # Drained so that a thread blocked on a full queue sees the stop at once.
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()


class StoredFile:
    """One VCF or BCF file opened for reading: how it is stored and its text stream.

    For BCF, the text is a temporary VCF written by ``bcftools view`` in a private folder
    that ``close`` removes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.compression = detect_compression(path)
        self.index = detect_index(path)
        self._tempdir: str | None = None
        self._stored_sha256: str | None = None
        self._stored_size: int | None = None
        text_path, mode = path, self.compression
        try:
            if self.compression == "bcf":
                self._stored_sha256, self._stored_size = _hash_file(path)
                self._tempdir = tempfile.mkdtemp(prefix="biofed-vcf-")
                text_path, mode = _decode_bcf(path, Path(self._tempdir)), "none"
            self.stream = TextStream(text_path, compression=mode, hash_bytes=self._tempdir is None)
        except BaseException:
            self.close()
            raise

    @property
    def sha256(self) -> str | None:
        """Hex SHA-256 of the stored file (complete once the stream has been read)."""
        return self._stored_sha256 or self.stream.sha256

    @property
    def size_bytes(self) -> int:
        """Size of the stored file in bytes (complete once the stream has been read)."""
        return self._stored_size if self._stored_size is not None else self.stream.size_bytes

    def read_header(self) -> tuple[list[str], bytes]:
        """The header lines (decoded, without line endings) and the body bytes read past it.

        Reading stops after the #CHROM line, or at the first line that does not start with
        '#' (which the header parser then reports).

        Raises:
            UnsupportedFormatError: the text does not start like a VCF file, or the header
                is unreasonably large.
            SourceNotFoundError: the file cannot be read.
        """
        buffer = b""
        lines: list[str] = []
        position = 0
        at_end = False
        while len(buffer) < len(_VCF_MAGIC) + len(_BOM) and not at_end:
            block = self._read_for_header()
            at_end = not block
            buffer += block
        if buffer.startswith(_BOM):
            buffer = buffer[len(_BOM) :]
        self._check_magic(buffer)
        while True:
            newline = buffer.find(b"\n", position)
            if newline < 0:
                if at_end:
                    if position < len(buffer):
                        lines.append(_decode_line(buffer[position:]))
                        position = len(buffer)
                    break
                if len(buffer) - position > _HEADER_LIMIT:
                    raise UnsupportedFormatError(
                        f"{self.path} has a header line longer than 1 GiB; this is not a VCF "
                        "file this reader can read."
                    )
                block = self._read_for_header()
                at_end = not block
                buffer = buffer[position:] + block
                position = 0
                continue
            line = buffer[position:newline]
            position = newline + 1
            lines.append(_decode_line(line))
            if line.startswith(b"#CHROM") or not line.startswith(b"#"):
                break
        return lines, buffer[position:]

    def _check_magic(self, buffer: bytes) -> None:
        if not buffer.startswith(_VCF_MAGIC):
            raise UnsupportedFormatError(
                f"{self.path} is not a VCF file: it does not start with "
                "'##fileformat=VCF'. Pass a VCF (.vcf, .vcf.gz, BGZF or gzip) or BCF file."
            )

    def _read_for_header(self) -> bytes:
        try:
            return self.stream.read_block()
        except CorruptStreamError as exc:
            raise UnsupportedFormatError(
                f"{self.path} looks gzip-compressed but its header cannot be decompressed "
                "(the file is truncated or corrupt). Copy the file again from its source."
            ) from exc
        except OSError as exc:
            raise unreadable(self.path, exc) from exc

    def close(self) -> None:
        """Close the stream and remove any temporary decoded file; idempotent."""
        stream = getattr(self, "stream", None)
        if stream is not None:
            stream.close()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None


def bcf_header_lines(path: Path) -> list[str]:
    """The header of a BCF file as text lines, decoded by bcftools.

    Args:
        path: the BCF file.

    Returns:
        The header lines without line endings, the #CHROM line last.

    Raises:
        UnsupportedFormatError: bcftools cannot read the file.
    """
    import pysam.bcftools

    try:
        text = pysam.bcftools.view("-h", "--no-version", str(path))
    except pysam.utils.SamtoolsError as exc:
        raise _undecodable(path) from exc
    return text.splitlines()


def _decode_bcf(path: Path, folder: Path) -> Path:
    import pysam.bcftools

    target = folder / "decoded.vcf"
    try:
        # catch_stdout=False: with it, pysam appends its own '-o <tempfile>' and captures
        # the whole decoded file in memory.
        pysam.bcftools.view("--no-version", "-Ov", "-o", str(target), str(path), catch_stdout=False)
    except pysam.utils.SamtoolsError as exc:
        raise _undecodable(path) from exc
    if not target.is_file():
        raise _undecodable(path)
    return target


def _decode_line(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


def _undecodable(path: Path) -> UnsupportedFormatError:
    return UnsupportedFormatError(
        f"{path} starts like a BCF file but bcftools cannot decode it (truncated, corrupt, or "
        "a BCF version other than 2). Convert it with 'bcftools view -Oz' where it was made."
    )


def _hash_file(path: Path) -> tuple[str, int]:
    hasher = hashlib.sha256()
    try:
        with open(path, "rb") as stream:
            while block := stream.read(_READ_SIZE):
                hasher.update(block)
    except OSError as exc:
        raise unreadable(path, exc) from exc
    return hasher.hexdigest(), os.path.getsize(path)
