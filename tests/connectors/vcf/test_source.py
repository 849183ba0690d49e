import gzip
import hashlib
import shutil
import tempfile
import threading

import pytest

from connectors.errors import SourceNotFoundError, UnsupportedFormatError
from connectors.vcf.source import (
    CorruptStreamError,
    Prefetcher,
    StoredFile,
    TextStream,
    detect_compression,
    detect_index,
)
from tests.connectors.vcf.conftest import DATA


def read_all(stream: TextStream) -> bytes:
    blocks = []
    while block := stream.read_block():
        blocks.append(block)
    return b"".join(blocks)


@pytest.mark.parametrize(
    ("name", "compression"),
    [
        ("tb.vcf.gz", "bgzf"),
        ("bcftools_roh.1.vcf.gz", "bgzf"),
        ("issue-201.vcf.gz", "bgzf"),
        ("htslib_vcf_file.bcf", "bcf"),
        ("freebayes.vcf", "none"),
    ],
)
def test_compression_is_recognised_by_magic_bytes(name, compression):
    assert detect_compression(DATA / name) == compression


def test_plain_gzip_is_told_apart_from_bgzf_whatever_the_name(tmp_path):
    path = tmp_path / "named.vcf"
    path.write_bytes(gzip.compress((DATA / "freebayes.vcf").read_bytes()))

    assert detect_compression(path) == "gzip"


def test_an_uncompressed_bcf_is_recognised(tmp_path):
    path = tmp_path / "plain.bcf"
    path.write_bytes(gzip.decompress((DATA / "htslib_vcf_file.bcf").read_bytes()))

    assert detect_compression(path) == "bcf"


def test_tabix_and_csi_indexes_beside_the_file_are_detected(tmp_path):
    assert detect_index(DATA / "tb.vcf.gz") == "tbi"
    assert detect_index(DATA / "bcftools_roh.1.vcf.gz") == "csi"
    assert detect_index(DATA / "freebayes.vcf") is None


@pytest.mark.parametrize("name", ["tb.vcf.gz", "bcftools_roh.1.vcf.gz", "issue-201.vcf.gz"])
def test_bgzf_blocks_inflate_to_the_same_text_as_gzip(name):
    stream = TextStream(DATA / name, compression="bgzf", hash_bytes=True)
    try:
        text = read_all(stream)
    finally:
        stream.close()

    stored = (DATA / name).read_bytes()
    assert text == gzip.decompress(stored)
    assert stream.sha256 == hashlib.sha256(stored).hexdigest()
    assert stream.size_bytes == len(stored)


def test_concatenated_gzip_members_and_zero_padding_are_read_whole(tmp_path):
    text = (DATA / "freebayes.vcf").read_bytes()
    path = tmp_path / "members.vcf.gz"
    path.write_bytes(gzip.compress(text[:5000]) + gzip.compress(text[5000:]) + b"\0" * 64)

    stream = TextStream(path, compression="gzip", hash_bytes=False)
    assert read_all(stream) == text
    assert stream.sha256 is None
    stream.close()


@pytest.mark.parametrize("compression", ["bgzf", "gzip"])
def test_a_truncated_compressed_file_is_reported(tmp_path, compression):
    stored = (DATA / "bcftools_roh.1.vcf.gz").read_bytes()
    path = tmp_path / "cut.vcf.gz"
    path.write_bytes(stored[: len(stored) // 2])

    stream = TextStream(path, compression=compression, hash_bytes=False)
    with pytest.raises(CorruptStreamError):
        read_all(stream)
    stream.close()


def test_a_corrupt_bgzf_block_is_reported(tmp_path):
    stored = bytearray((DATA / "bcftools_roh.1.vcf.gz").read_bytes())
    stored[200:210] = b"\xff" * 10
    path = tmp_path / "corrupt.vcf.gz"
    path.write_bytes(bytes(stored))

    stream = TextStream(path, compression="bgzf", hash_bytes=False)
    with pytest.raises(CorruptStreamError):
        read_all(stream)
    stream.close()


def test_the_header_is_read_and_the_body_starts_after_the_column_line():
    stored = StoredFile(DATA / "tb.vcf.gz")
    try:
        lines, body = stored.read_header()
        rest = body + read_all(stored.stream)
    finally:
        stored.close()

    assert lines[0] == "##fileformat=VCFv4.0"
    assert lines[-1].startswith("#CHROM")
    assert len(lines) == 19
    assert rest.startswith(b"20\t14370\trs6054257")
    assert rest.count(b"\n") == 5


def test_a_bcf_file_is_decoded_to_text_in_a_folder_that_close_removes(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stored = StoredFile(DATA / "htslib_vcf_file.bcf")
    assert [p.name for p in tmp_path.glob("biofed-vcf-*/*")] == ["decoded.vcf"]
    try:
        lines, body = stored.read_header()
        rest = body + read_all(stored.stream)
    finally:
        stored.close()

    assert lines[-1] == "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB"
    assert not any(line.startswith("##bcftools") for line in lines)
    assert rest.count(b"\n") == 15
    assert not any(tmp_path.iterdir())
    stored_bytes = (DATA / "htslib_vcf_file.bcf").read_bytes()
    assert stored.sha256 == hashlib.sha256(stored_bytes).hexdigest()
    assert stored.size_bytes == len(stored_bytes)


def test_a_file_that_only_starts_like_bcf_is_not_decodable(tmp_path, monkeypatch):
    temporary = tmp_path / "temporary"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    path = tmp_path / "fake.bcf"
    path.write_bytes(b"BCF\x02\x02" + b"\0" * 64)

    with pytest.raises(UnsupportedFormatError, match="bcftools cannot decode it"):
        StoredFile(path)
    assert not any(temporary.iterdir())


def test_a_file_that_cannot_be_opened_is_reported_as_unreadable(tmp_path):
    folder = tmp_path / "folder.vcf"
    folder.mkdir()

    with pytest.raises(SourceNotFoundError, match="cannot be read"):
        StoredFile(folder)


def blocks_of(stream: TextStream):
    while block := stream.read_block():
        yield block


def test_the_prefetcher_hands_over_every_item_in_order():
    stream = TextStream(DATA / "bcftools_roh.1.vcf.gz", compression="bgzf", hash_bytes=False)
    prefetcher = Prefetcher(blocks_of(stream), depth=2)

    blocks = list(prefetcher)
    prefetcher.stop()
    stream.close()

    assert b"".join(blocks) == gzip.decompress((DATA / "bcftools_roh.1.vcf.gz").read_bytes())


def test_stopping_the_prefetcher_early_ends_its_thread():
    threads = threading.active_count()
    prefetcher = Prefetcher(iter(range(1000)), depth=2)
    assert next(iter(prefetcher)) == 0
    assert threading.active_count() == threads + 1  # blocked on its full queue

    prefetcher.stop()

    assert threading.active_count() == threads


def test_what_the_iterator_raises_is_raised_to_the_consumer(tmp_path):
    stored = (DATA / "bcftools_roh.1.vcf.gz").read_bytes()
    path = tmp_path / "cut.vcf.gz"
    path.write_bytes(stored[:3000])
    stream = TextStream(path, compression="bgzf", hash_bytes=False)
    prefetcher = Prefetcher(blocks_of(stream), depth=2)

    with pytest.raises(CorruptStreamError):
        list(prefetcher)
    prefetcher.stop()
    stream.close()


def test_reading_a_copy_gives_the_same_hash_as_the_original(tmp_path):
    copy = tmp_path / "copy.vcf.gz"
    shutil.copy(DATA / "tb.vcf.gz", copy)
    stored = StoredFile(copy)
    stored.read_header()
    read_all(stored.stream)
    stored.close()

    assert stored.sha256.startswith("186dd907ccde")
