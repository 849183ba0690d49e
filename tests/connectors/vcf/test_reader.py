import gzip
import hashlib
import tempfile
import threading

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.errors import MalformedRecordError, SourceNotFoundError, UnsupportedFormatError
from connectors.result import REJECT_SCHEMA
from connectors.vcf import (
    VCF_FILES_SCHEMA,
    VcfBatch,
    VcfReader,
    genotypes_schema,
    iter_vcf_batches,
    read_vcf,
    variants_schema,
)
from connectors.vcf.chunks import column_count_reason
from connectors.vcf.reader import TRUNCATED
from tests.connectors.vcf.conftest import DATA, HEADER

SECRET = "7319"


def reject_rows(path, rows: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(str(path), locator, reason) for locator, reason in rows],
        schema=REJECT_SCHEMA,
        orient="row",
    )


def test_read_vcf_returns_variants_genotypes_and_the_file_row_in_that_order():
    result = read_vcf(DATA / "tb.vcf.gz")

    assert list(result.tables) == ["variants", "genotypes", "vcf_files"]
    assert_frame_equal(result.rejects, pl.DataFrame(schema=REJECT_SCHEMA))


def test_the_file_row_describes_the_file_as_stored_and_what_was_read():
    path = DATA / "tb.vcf.gz"
    files = read_vcf(path).tables["vcf_files"]

    header_text = gzip.decompress(path.read_bytes()).decode().split("20\t14370")[0]
    expected = pl.DataFrame(
        [
            {
                "source_file": str(path),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "size_bytes": 783,
                "compression": "bgzf",
                "index": "tbi",
                "fileformat": "VCFv4.0",
                "reference": "1000GenomesPilot-NCBI36",
                "contigs": [],
                "samples": ["NA00001", "NA00002", "NA00003"],
                "info_fields": ["NS", "DP", "AF", "AA", "DB", "H2", "AC"],
                "format_fields": ["GT", "GQ", "DP", "HQ"],
                "header_text": header_text,
                "records": 5,
                "variants": 7,
                "genotypes": 15,
                "rejected": 0,
                "warnings": [],
            }
        ],
        schema=VCF_FILES_SCHEMA,
    )
    assert_frame_equal(files, expected)


def test_contigs_are_listed_with_their_lengths():
    files = read_vcf(DATA / "bcftools_query.vcf").tables["vcf_files"]

    assert files["contigs"].to_list() == [
        [
            {"id": "1", "length": 249250621},
            {"id": "3", "length": 198022430},
            {"id": "4", "length": 191154276},
            {"id": "2", "length": 249250621},
        ]
    ]


def test_the_label_replaces_the_path_in_source_file(write_vcf):
    path = write_vcf("1\t5\t.\tC\tT,G\t50\tPASS\t.\tGT\t0/1\t0/0", "1\t6\t.\tC\t<DEL>\t.\t.\t.")

    result = read_vcf(path, label="landing/genomics/a.vcf", on_error="quarantine")

    for name in ("variants", "genotypes", "vcf_files"):
        assert result.tables[name]["source_file"].unique().to_list() == ["landing/genomics/a.vcf"]
    assert result.rejects["source"].to_list() == ["landing/genomics/a.vcf"]


def test_small_batches_concatenate_to_the_same_tables_as_one_read():
    path = DATA / "freebayes.vcf"
    whole = read_vcf(path)

    with iter_vcf_batches(path, batch_bytes=4096) as reader:
        header = reader.header
        batches = list(reader)
        files = reader.file_row()

    assert len(batches) > 10
    for batch in batches:
        assert isinstance(batch, VcfBatch)
        assert batch.variants.schema == variants_schema(header)
        assert batch.genotypes.schema == genotypes_schema(header)
        assert batch.rejects.schema == REJECT_SCHEMA
    variants = pl.concat([batch.variants for batch in batches])
    genotypes = pl.concat([batch.genotypes for batch in batches])
    assert_frame_equal(variants, whole.tables["variants"])
    assert_frame_equal(
        genotypes.sort("record_index", "sample_index"),
        whole.tables["genotypes"].sort("record_index", "sample_index"),
    )
    assert_frame_equal(files, whole.tables["vcf_files"])


def test_records_are_numbered_across_batches_without_blank_lines(write_vcf):
    lines = []
    for pos in range(1, 61):
        lines.append(f"1\t{pos}\t.\tA\tG\t.\t.\tDP={pos}\tGT\t0/1\t0/0")
        if pos % 7 == 0:
            lines.append("")
    path = write_vcf(*lines)

    with iter_vcf_batches(path, batch_bytes=300) as reader:
        batches = list(reader)
    variants = pl.concat([batch.variants for batch in batches])

    assert len(batches) > 5
    assert variants["record_index"].to_list() == list(range(60))
    assert variants["info_DP"].to_list() == list(range(1, 61))
    assert variants["line"].to_list() == [12 + pos - 1 + (pos - 1) // 7 for pos in range(1, 61)]


def test_rejects_come_in_line_order_and_raise_mode_stops_at_the_first(write_vcf):
    lines = [f"1\t{pos}\t.\tA\tG\t.\t.\tDP={pos}\tGT\t0/1\t0/0" for pos in range(1, 61)]
    for bad in (10, 35, 50):
        lines[bad - 1] = f"1\t{bad}\t.\tA\tG\t.\t.\tDP=x\tGT\t0/1\t0/0"
    path = write_vcf(*lines)

    with iter_vcf_batches(path, batch_bytes=300, on_error="quarantine") as reader:
        rejects = pl.concat([batch.rejects for batch in reader])
    with pytest.raises(MalformedRecordError) as raised:
        for _batch in iter_vcf_batches(path, batch_bytes=300):
            pass

    assert rejects["locator"].to_list() == ["line:21", "line:46", "line:61"]
    assert raised.value.locator == "line:21"


def test_the_header_is_available_before_iterating_and_the_file_row_after():
    reader = iter_vcf_batches(DATA / "tb.vcf.gz")

    assert reader.header.samples == ("NA00001", "NA00002", "NA00003")
    with pytest.raises(RuntimeError, match="iterate the reader until it is exhausted"):
        reader.file_row()
    batches = list(reader)
    assert len(batches) == 1
    assert reader.file_row()["records"].to_list() == [5]


def test_a_line_longer_than_a_batch_is_read_whole(write_vcf):
    note = "x" * 5000
    path = write_vcf(
        "1\t5\t.\tC\tT\t50\tPASS\t.\tGT\t0/1\t0/0",
        f"1\t6\t.\tC\tT\t50\tPASS\tNOTE={note}\tGT\t0/1\t0/0",
        "1\t7\t.\tC\tT\t50\tPASS\t.\tGT\t0/1\t0/0",
    )

    with iter_vcf_batches(path, batch_bytes=64) as reader:
        variants = pl.concat([batch.variants for batch in reader])

    assert variants["info_NOTE"].to_list() == [None, note, None]
    assert variants["line"].to_list() == [12, 13, 14]


def test_a_file_without_data_lines_gives_empty_tables_with_their_schemas(write_vcf):
    path = write_vcf()

    result = read_vcf(path)

    header = iter_vcf_batches(path).header
    assert_frame_equal(result.tables["variants"], pl.DataFrame(schema=variants_schema(header)))
    assert_frame_equal(result.tables["genotypes"], pl.DataFrame(schema=genotypes_schema(header)))
    assert result.tables["vcf_files"].select("records", "variants", "genotypes").row(0) == (
        0,
        0,
        0,
    )


def test_crlf_line_endings_and_a_missing_final_newline_are_read(tmp_path):
    path = tmp_path / "windows.vcf"
    text = HEADER + "1\t5\t.\tC\tT\t50\tPASS\tDP=3\tGT:DP\t0/1:4\t0/0:5\n"
    text += "1\t6\t.\tC\tT\t50\tPASS\tDP=4\tGT:DP\t1/1:6\t0/0:7"
    path.write_bytes(text.replace("\n", "\r\n").encode())

    result = read_vcf(path)

    assert result.tables["variants"].select("pos", "info_DP").rows() == [(5, 3), (6, 4)]
    assert result.tables["genotypes"].sort("record_index").select("gt", "fmt_DP").rows() == [
        ("0/1", 4),
        ("0/0", 5),
        ("1/1", 6),
        ("0/0", 7),
    ]
    assert result.tables["vcf_files"]["header_text"][0] == HEADER


def test_a_utf8_byte_order_mark_before_the_header_is_skipped(tmp_path):
    path = tmp_path / "bom.vcf"
    path.write_bytes(
        b"\xef\xbb\xbf" + (HEADER + "1\t5\t.\tC\tT\t50\tPASS\t.\tGT\t0/1\t0/0\n").encode()
    )

    result = read_vcf(path)

    assert result.tables["vcf_files"]["fileformat"].to_list() == ["VCFv4.3"]
    assert result.tables["variants"]["line"].to_list() == [12]


def test_a_format_column_without_samples_gives_no_genotypes(tmp_path):
    path = tmp_path / "no-samples.vcf"
    path.write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\n"
        "1\t5\t.\tA\tG\t.\t.\t.\tGT\n",
        encoding="utf-8",
    )

    result = read_vcf(path)

    assert result.tables["variants"].height == 1
    assert result.tables["genotypes"].height == 0


def test_lines_with_the_wrong_number_of_columns_are_quarantined(write_vcf):
    path = write_vcf(
        "1\t5\t.\tC\tT\t50\tPASS\t.\tGT\t0/1\t0/0",
        "1\t7319\t.\tC\tT\t50\tPASS\t.\tGT\t0/1",
        "",
        "1\t7\t.\tC\tT\t50\tPASS\t.\tGT\t0/1\t0/0\t7319",
        "1\t8\t.\tC\tT\t50\tPASS\t.\tGT\t1/1\t0/0",
    )

    result = read_vcf(path, on_error="quarantine")

    reason = column_count_reason(11)
    assert_frame_equal(
        result.rejects, reject_rows(path, [("line:13", reason), ("line:15", reason)])
    )
    assert result.tables["variants"].select("record_index", "line").rows() == [(0, 12), (3, 16)]
    files = result.tables["vcf_files"]
    assert files.select("records", "variants", "genotypes", "rejected").row(0) == (4, 2, 4, 2)


def test_a_batch_whose_records_are_all_rejected_keeps_the_schemas(write_vcf):
    path = write_vcf("1\tx\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/0", "1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1")

    with iter_vcf_batches(path, on_error="quarantine") as reader:
        header = reader.header
        (batch,) = list(reader)

    assert_frame_equal(batch.variants, pl.DataFrame(schema=variants_schema(header)))
    assert_frame_equal(batch.genotypes, pl.DataFrame(schema=genotypes_schema(header)))
    assert batch.rejects["locator"].to_list() == ["line:12", "line:13"]


def test_in_raise_mode_the_first_malformed_line_of_the_file_raises(write_vcf):
    path = write_vcf(
        "1\t5\t.\tC\tT\t50\tPASS\tDP=x7319\tGT\t0/1\t0/0",
        "1\t6\t.\tC\tT\t50\tPASS\t.\tGT\t0/1",
    )

    with pytest.raises(MalformedRecordError) as raised:
        read_vcf(path)

    assert raised.value.locator == "line:12"
    assert raised.value.reason == "INFO/DP is not of Type=Integer as the header declares"
    assert SECRET not in str(raised.value)
    assert "on_error='quarantine'" in str(raised.value)


def test_a_truncated_gzip_file_is_read_up_to_the_break_then_rejected(tmp_path):
    text = gzip.decompress((DATA / "bcftools_roh.1.vcf.gz").read_bytes())
    path = tmp_path / "cut.vcf.gz"
    stored = gzip.compress(text)
    path.write_bytes(stored[: len(stored) // 2])

    result = read_vcf(path, on_error="quarantine")

    assert result.rejects["reason"].to_list() == [TRUNCATED]
    variants = result.tables["variants"]
    assert variants.height > 0
    line = int(result.rejects["locator"][0].removeprefix("line:"))
    assert line == variants["line"].max() + 1
    with pytest.raises(MalformedRecordError, match="file is truncated"):
        read_vcf(path)


def test_a_missing_path_or_a_folder_is_not_found(tmp_path):
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        read_vcf(tmp_path / "absent.vcf.gz")
    with pytest.raises(SourceNotFoundError, match="is a folder"):
        iter_vcf_batches(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
        b"CHROM,POS,REF\n1,5,A\n",
        gzip.compress(b"sample_id,mrn\nS1,7319\n"),
        b"",
    ],
)
def test_a_file_that_is_not_vcf_is_unsupported(tmp_path, content):
    path = tmp_path / "data.vcf"
    path.write_bytes(content)

    with pytest.raises(UnsupportedFormatError) as raised:
        read_vcf(path)

    assert SECRET not in str(raised.value)


def test_invalid_options_are_refused(write_vcf):
    path = write_vcf()

    with pytest.raises(ValueError, match="on_error"):
        read_vcf(path, on_error="ignore")
    with pytest.raises(ValueError, match="batch_bytes"):
        iter_vcf_batches(path, batch_bytes=0)


def test_a_bcf_file_is_decoded_and_located_by_line_of_its_text(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    result = read_vcf(DATA / "htslib_vcf_file.bcf", on_error="quarantine")

    assert result.tables["vcf_files"]["compression"].to_list() == ["bcf"]
    assert result.tables["variants"]["line"].min() == 24
    assert not any(tmp_path.iterdir())


def test_a_reader_stopped_early_ends_its_thread(write_vcf):
    # Large enough that the reading thread is still waiting to hand over blocks.
    path = write_vcf(*(f"1\t{pos}\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/0" for pos in range(1, 300_000)))
    threads = threading.active_count()

    with iter_vcf_batches(path, batch_bytes=1 << 20) as reader:
        next(reader)
        # The reading thread, blocked on its full queue, and the parsing workers.
        assert threading.active_count() > threads + 1

    assert threading.active_count() == threads


def test_a_reader_stopped_early_removes_its_temporary_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    with iter_vcf_batches(
        DATA / "htslib_vcf_file.bcf", batch_bytes=256, on_error="quarantine"
    ) as reader:
        next(reader)
        assert any(tmp_path.iterdir())

    assert not any(tmp_path.iterdir())


def test_a_reader_dropped_without_closing_releases_its_thread_and_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    threads = threading.active_count()

    for _batch in iter_vcf_batches(
        DATA / "htslib_vcf_file.bcf", batch_bytes=256, on_error="quarantine"
    ):
        break

    assert threading.active_count() == threads
    assert not any(tmp_path.iterdir())


def test_a_reader_never_iterated_releases_its_files_on_close(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    reader = VcfReader(DATA / "htslib_vcf_file.bcf")
    assert any(tmp_path.iterdir())
    reader.close()

    assert not any(tmp_path.iterdir())
    with pytest.raises(StopIteration):
        next(iter(reader))
