import gzip
import math

import pysam
import pytest

from connectors.synth import vcf_bench
from connectors.synth.vcf_bench import BENCH_CONTIGS, write_benchmark_vcf

RECORDS = 20_000
CONTIG_ORDER = {name: i for i, (name, _) in enumerate(BENCH_CONTIGS)}
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_benchmark_vcf(
        tmp_path_factory.mktemp("bench") / "bench.vcf.gz", records=RECORDS, samples=3, seed=1
    )


@pytest.fixture(scope="module")
def records(bench):
    with pysam.VariantFile(str(bench)) as vcf:
        return [
            (
                r.chrom,
                r.pos,
                r.id,
                r.alts,
                dict(r.info),
                [(s["GT"], s.phased, s["DP"], s["AD"]) for s in r.samples.values()],
            )
            for r in vcf
        ]


def _assert_sorted(keys: list[tuple[str, int]]) -> None:
    ordered = [(CONTIG_ORDER[chrom], pos) for chrom, pos in keys]
    assert ordered == sorted(ordered)
    assert len(set(ordered)) == len(ordered)


def test_the_file_holds_the_records_asked_for_sorted_over_the_contigs(bench, records):
    assert bench.name == "bench.vcf.gz"
    assert len(records) == RECORDS
    _assert_sorted([(chrom, pos) for chrom, pos, *_ in records])
    assert {chrom for chrom, *_ in records} == set(CONTIG_ORDER)
    lengths = dict(BENCH_CONTIGS)
    assert all(1 <= pos <= lengths[chrom] for chrom, pos, *_ in records)


def test_header_declares_the_fields_and_samples(bench):
    with pysam.VariantFile(str(bench)) as vcf:
        header = vcf.header
        assert list(header.samples) == ["S1", "S2", "S3"]
        info = {key: (f.number, f.type) for key, f in header.info.items()}
        formats = {key: (f.number, f.type) for key, f in header.formats.items()}
        assert [(c.name, c.length) for c in header.contigs.values()] == list(BENCH_CONTIGS)
    assert info == {
        "DP": (1, "Integer"),
        "AF": ("A", "Float"),
        "AC": ("A", "Integer"),
        "AN": (1, "Integer"),
        "MQ": (1, "Float"),
        "DB": (0, "Flag"),
    }
    assert formats == {
        "GT": (1, "String"),
        "DP": (1, "Integer"),
        "GQ": (1, "Integer"),
        "AD": ("R", "Integer"),
    }


def test_info_counts_agree_with_the_genotypes(records):
    for _, _, _, alts, info, calls in records:
        alleles = [a for gt, *_ in calls for a in gt if a is not None]
        assert info["AN"] == len(alleles)
        assert list(info["AC"]) == [alleles.count(k) for k in range(1, len(alts) + 1)]
        assert info["DP"] == sum(dp for _, _, dp, _ in calls if dp is not None)
        if info["AN"]:
            for count, frequency in zip(info["AC"], info["AF"], strict=True):
                assert math.isclose(frequency, count / info["AN"], abs_tol=6e-5)


def test_multiallelic_sites_missing_and_phased_calls_appear_at_their_rates(records):
    multi = [r for r in records if len(r[3]) == 2]
    assert 0.04 <= len(multi) / len(records) <= 0.06
    for _, _, _, alts, info, calls in records:
        assert len(info["AC"]) == len(info["AF"]) == len(alts)
        for gt, _, dp, ad in calls:
            if gt[0] is not None:
                assert len(ad) == 1 + len(alts) and sum(ad) == dp
    calls = [call for r in records for call in r[5]]
    missing = [c for c in calls if c[0] == (None, None)]
    assert 0.015 <= len(missing) / len(calls) <= 0.025
    phased = [c for c in calls if c[1]]
    assert phased
    assert all(len(set(gt)) == 2 for gt, *_ in phased)


def test_db_sites_carry_an_rs_id(records):
    for _, _, rsid, _, info, _ in records:
        assert bool(rsid) == info.get("DB", False)
    assert 0.25 <= sum(1 for r in records if r[2]) / len(records) <= 0.4


def test_the_index_fetches_a_region(bench, records):
    assert bench.with_name("bench.vcf.gz.tbi").stat().st_size > 0
    chrom, start, end = "chr2", 50_000_000, 60_000_000
    expected = [pos for c, pos, *_ in records if c == chrom and start <= pos <= end]
    with pysam.VariantFile(str(bench)) as vcf:
        fetched = [r.pos for r in vcf.fetch(chrom, start - 1, end)]
    assert expected
    assert fetched == expected


def test_the_file_is_bgzf_and_decompresses_with_plain_gzip(bench):
    raw = bench.read_bytes()
    assert raw.endswith(BGZF_EOF)
    assert raw[12:14] == b"BC"
    with gzip.open(bench, "rt") as handle:
        lines = handle.read().splitlines()
    assert sum(1 for line in lines if not line.startswith("#")) == RECORDS


def test_records_spanning_many_chunks_stay_whole_and_sorted(tmp_path, monkeypatch):
    monkeypatch.setattr(vcf_bench, "CHUNK_RECORDS", 997)
    path = write_benchmark_vcf(tmp_path / "chunks.vcf.gz", records=6_000, samples=2, seed=3)
    with pysam.VariantFile(str(path)) as vcf:
        keys = [(r.chrom, r.pos) for r in vcf]
        assert [len(r.samples) for r in vcf.fetch("chr4")] == [2] * sum(
            1 for chrom, _ in keys if chrom == "chr4"
        )
    assert len(keys) == 6_000
    _assert_sorted(keys)


def test_same_arguments_give_the_same_bytes_and_another_seed_differs(tmp_path):
    first = write_benchmark_vcf(tmp_path / "a.vcf.gz", records=3_000, seed=5)
    second = write_benchmark_vcf(tmp_path / "b.vcf.gz", records=3_000, seed=5)
    other = write_benchmark_vcf(tmp_path / "c.vcf.gz", records=3_000, seed=6)
    assert first.read_bytes() == second.read_bytes()
    assert (
        first.with_name("a.vcf.gz.tbi").read_bytes()
        == second.with_name("b.vcf.gz.tbi").read_bytes()
    )
    assert first.read_bytes() != other.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{name}.vcf.gz{suffix}" for name in "abc" for suffix in ("", ".tbi")
    )


def test_zero_records_give_a_header_only_indexed_file(tmp_path):
    path = write_benchmark_vcf(str(tmp_path / "empty.vcf.gz"), records=0, samples=1)
    with pysam.VariantFile(str(path)) as vcf:
        assert list(vcf.header.samples) == ["S1"]
        assert list(vcf.fetch("chr1")) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"records": -1}, "records"),
        ({"records": 2.5}, "records"),
        ({"records": 10, "samples": 0}, "samples"),
        ({"records": 10, "samples": True}, "samples"),
        ({"records": 10**9}, "records"),
    ],
)
def test_out_of_range_arguments_are_rejected(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        write_benchmark_vcf(tmp_path / "x.vcf.gz", **arguments)
    assert list(tmp_path.iterdir()) == []
