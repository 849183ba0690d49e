import csv
import gzip
import math
from collections import Counter
from datetime import date
from pathlib import Path

import pysam
import pytest

from connectors.synth import build_people, write_cohort, write_genomics
from connectors.synth.genomics import (
    GRCH38_CONTIGS,
    KNOWN_VARIANTS,
    MANIFEST_COLUMNS,
    SITE_COUNT,
    cohort_sites,
)

PATIENTS = 150
SEED = 7
FILES = ("cohort.vcf.gz", "cohort.vcf.gz.tbi", "samples.csv")
CONTIG_ORDER = {name: i for i, (name, _) in enumerate(GRCH38_CONTIGS)}


@pytest.fixture(scope="module")
def people():
    return build_people(PATIENTS, SEED)


@pytest.fixture(scope="module")
def written(tmp_path_factory, people):
    out = tmp_path_factory.mktemp("cohort")
    counts = write_genomics(people, out)
    return out / "genomics", counts


@pytest.fixture(scope="module")
def records(written):
    folder, _ = written
    with pysam.VariantFile(str(folder / "cohort.vcf.gz")) as vcf:
        return [_plain(record) for record in vcf]


def _plain(record: pysam.VariantRecord) -> dict:
    """The parts of a record the tests look at, as plain values."""
    return {
        "chrom": record.chrom,
        "pos": record.pos,
        "id": record.id,
        "ref": record.ref,
        "alts": record.alts,
        "filters": list(record.filter.keys()),
        "info": dict(record.info),
        "samples": {
            name: {**dict(call), "phased": call.phased} for name, call in record.samples.items()
        },
    }


def _manifest(folder: Path) -> list[dict[str, str]]:
    with (folder / "samples.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _sequenced(people) -> list:
    return [p for p in people if p.vcf_sample_id is not None]


def _data_lines(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt") as handle:
        return [line.rstrip("\n").split("\t") for line in handle if not line.startswith("#")]


def test_header_declares_grch38_contigs_filters_and_typed_fields(written):
    folder, _ = written
    with pysam.VariantFile(str(folder / "cohort.vcf.gz")) as vcf:
        header = vcf.header
        assert header.version == "VCFv4.2"
        assert [(r.key, r.value) for r in header.records if r.key == "reference"] == [
            ("reference", "GRCh38")
        ]
        assert [(c.name, c.length) for c in header.contigs.values()] == list(GRCH38_CONTIGS)
        assert {"PASS", "LowQual", "q10"} <= set(header.filters)
        info = {key: (field.number, field.type) for key, field in header.info.items()}
        formats = {key: (field.number, field.type) for key, field in header.formats.items()}
    assert info == {
        "AC": ("A", "Integer"),
        "AF": ("A", "Float"),
        "AN": (1, "Integer"),
        "ANN": (".", "String"),
        "DB": (0, "Flag"),
        "DP": (1, "Integer"),
        "FS": (1, "Float"),
        "MQ": (1, "Float"),
        "QD": (1, "Float"),
    }
    assert formats == {
        "GT": (1, "String"),
        "AD": ("R", "Integer"),
        "DP": (1, "Integer"),
        "GQ": (1, "Integer"),
        "PL": ("G", "Integer"),
    }


def test_sample_columns_are_the_sequenced_people_in_roster_order(written, people):
    folder, counts = written
    with pysam.VariantFile(str(folder / "cohort.vcf.gz")) as vcf:
        samples = list(vcf.header.samples)
    expected = [p.vcf_sample_id for p in _sequenced(people)]
    assert samples == expected
    assert 40 <= len(samples) <= 80
    assert counts == {"genomics/cohort.vcf.gz": SITE_COUNT, "genomics/samples.csv": len(samples)}


def test_manifest_links_each_sample_to_the_persons_mrn(written, people):
    folder, _ = written
    header = (folder / "samples.csv").read_text().splitlines()[0]
    assert header == ",".join(MANIFEST_COLUMNS)
    rows = _manifest(folder)
    sequenced = _sequenced(people)
    assert [row["sample_id"] for row in rows] == [p.vcf_sample_id for p in sequenced]
    for row, person in zip(rows, sequenced, strict=True):
        assert row["mrn"] == person.mrn
        assert row["vcf_file"] == "cohort.vcf.gz"
        assert row["specimen_type"] in {"blood", "saliva"}
        assert row["sequencing_platform"].startswith("Illumina ")
        collected = date.fromisoformat(row["collection_date"])
        assert person.consent_date <= collected <= person.end_date
        if person.consent_revoked_date:
            assert collected <= person.consent_revoked_date
    assert len({row["specimen_type"] for row in rows}) == 2


def test_records_are_sorted_and_spread_over_every_chromosome(records):
    assert len(records) == SITE_COUNT
    keys = [(CONTIG_ORDER[r["chrom"]], r["pos"]) for r in records]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    per_contig = Counter(r["chrom"] for r in records)
    assert set(per_contig) == set(CONTIG_ORDER)
    assert per_contig["chr1"] > per_contig["chr21"] > per_contig["chrY"]


def test_info_allele_counts_and_depth_agree_with_the_genotypes(records):
    for record in records:
        alleles = [a for call in record["samples"].values() for a in call["GT"] if a is not None]
        depth = sum(call["DP"] for call in record["samples"].values() if call["DP"] is not None)
        info = record["info"]
        assert info["AN"] == len(alleles)
        assert list(info["AC"]) == [alleles.count(k) for k in range(1, len(record["alts"]) + 1)]
        for count, frequency in zip(info["AC"], info["AF"], strict=True):
            assert math.isclose(frequency, count / info["AN"], rel_tol=1e-5, abs_tol=1e-7)
        assert info["DP"] == depth


def test_about_five_percent_of_sites_are_multiallelic_with_fields_per_allele(records):
    multi = [r for r in records if len(r["alts"]) == 2]
    assert 0.03 <= len(multi) / len(records) <= 0.08
    assert all(len(r["alts"]) in (1, 2) for r in records)
    for record in records:
        n_alleles = 1 + len(record["alts"])
        assert len(record["info"]["AC"]) == len(record["info"]["AF"]) == n_alleles - 1
        for call in record["samples"].values():
            if call["GT"][0] is None:
                continue
            ploidy = len(call["GT"])
            genotypes = n_alleles if ploidy == 1 else n_alleles * (n_alleles + 1) // 2
            assert len(call["AD"]) == n_alleles
            assert sum(call["AD"]) == call["DP"]
            assert len(call["PL"]) == genotypes


def test_each_call_is_the_likeliest_genotype_with_its_quality(records):
    for record in records:
        for call in record["samples"].values():
            if call["GT"][0] is None:
                continue
            if len(call["GT"]) == 1:
                index = call["GT"][0]
            else:
                low, high = sorted(call["GT"])
                index = high * (high + 1) // 2 + low
            assert call["PL"][index] == 0
            assert call["GQ"] == min(sorted(call["PL"])[1], 99)


def test_some_calls_are_missing_and_some_hets_are_phased(records):
    diploid = [
        call
        for r in records
        if r["chrom"] not in ("chrX", "chrY")
        for call in r["samples"].values()
    ]
    missing = [c for c in diploid if c["GT"] == (None, None)]
    assert 0.01 <= len(missing) / len(diploid) <= 0.04
    for call in missing:
        assert call["DP"] is None and call["GQ"] is None
        assert call["AD"] == (None,) and call["PL"] == (None,)
    het = [None not in c["GT"] and len(set(c["GT"])) == 2 for c in diploid]
    phased = [c["phased"] for c in diploid]
    assert 0 < sum(phased) / sum(het) <= 0.06
    assert not any(p and not h for p, h in zip(phased, het, strict=True))


def test_males_are_haploid_on_chrx_and_chry_and_others_are_uncalled_on_chry(records, people):
    gender = {p.vcf_sample_id: p.gender for p in _sequenced(people)}
    assert Counter(gender.values())["male"] >= 10
    for record in records:
        if record["chrom"] not in ("chrX", "chrY"):
            continue
        for sample, call in record["samples"].items():
            male = gender[sample] == "male"
            if record["chrom"] == "chrX":
                assert len(call["GT"]) == (1 if male else 2)
            elif not male:
                assert call["GT"] == (None,)
            else:
                assert len(call["GT"]) == 1
    assert any(
        call["GT"] == (1,)
        for r in records
        if r["chrom"] == "chrX"
        for call in r["samples"].values()
    )


def test_rs7903146_in_tcf7l2_is_present_at_a_common_frequency(written):
    folder, _ = written
    with pysam.VariantFile(str(folder / "cohort.vcf.gz")) as vcf:
        found = [_plain(r) for r in vcf.fetch("chr10", 112_998_589, 112_998_590)]
    assert len(found) == 1
    (record,) = found
    assert (record["id"], record["ref"], record["alts"]) == ("rs7903146", "C", ("T",))
    assert 0.15 <= record["info"]["AF"][0] <= 0.45
    assert record["info"]["DB"] is True
    assert "TCF7L2" in record["info"]["ANN"][0]
    assert record["filters"] == ["PASS"]


def test_index_is_written_and_a_region_fetch_returns_the_sites_in_the_region(written, records):
    folder, _ = written
    assert (folder / "cohort.vcf.gz.tbi").stat().st_size > 0
    start, end = 43_044_295, 43_125_483  # BRCA1
    expected = [
        (r["pos"], r["ref"]) for r in records if r["chrom"] == "chr17" and start <= r["pos"] <= end
    ]
    with pysam.VariantFile(str(folder / "cohort.vcf.gz")) as vcf:
        fetched = [(r.pos, r.ref) for r in vcf.fetch("chr17", start - 1, end)]
    assert expected
    assert fetched == expected


def test_a_few_sites_fail_declared_filters(records):
    filters = Counter(tuple(r["filters"]) for r in records)
    failing = len(records) - filters[("PASS",)]
    assert 0.01 <= failing / len(records) <= 0.1
    assert set(filters) <= {("PASS",), ("LowQual",), ("LowQual", "q10")}


def test_dbsnp_ids_go_with_the_db_flag_and_some_sites_are_annotated(records):
    with_id = [r for r in records if r["id"]]
    assert 0.3 <= len(with_id) / len(records) <= 0.9
    for record in records:
        assert bool(record["id"]) == record["info"].get("DB", False)
        if record["id"]:
            assert record["id"].startswith("rs")
    assert len({r["id"] for r in with_id}) == len(with_id)
    annotated = [r for r in records if "ANN" in r["info"]]
    assert 0.15 <= len(annotated) / len(records) <= 0.4
    for record in annotated:
        assert len(record["info"]["ANN"]) == len(record["alts"])


def test_sites_depend_only_on_the_seed_and_carry_the_known_variants():
    sites = cohort_sites(SEED)
    assert sites == cohort_sites(SEED)
    assert [(s.chrom, s.pos) for s in sites] != [(s.chrom, s.pos) for s in cohort_sites(8)]
    for seed in (SEED, 8):
        known = {(s.chrom, s.pos, s.rsid) for s in cohort_sites(seed)}
        assert {(k.chrom, k.pos, k.rsid) for k in KNOWN_VARIANTS} <= known


def test_same_roster_gives_byte_identical_files(tmp_path, people):
    write_genomics(people[:60], tmp_path / "a")
    write_genomics(people[:60], tmp_path / "b")
    for name in FILES:
        first = (tmp_path / "a" / "genomics" / name).read_bytes()
        assert first == (tmp_path / "b" / "genomics" / name).read_bytes(), name


def test_a_persons_genotypes_do_not_depend_on_the_cohort_size(tmp_path, written, people):
    folder, _ = written
    write_genomics(people[:40], tmp_path)
    small = _data_lines(tmp_path / "genomics" / "cohort.vcf.gz")
    large = _data_lines(folder / "cohort.vcf.gz")
    assert len(small) == len(large) == SITE_COUNT
    samples = len(_sequenced(people[:40]))
    assert 0 < samples < len(_sequenced(people))
    for short, long in zip(small, large, strict=True):
        # CHROM POS ID REF ALT QUAL FILTER, then FORMAT and the shared people's calls.
        assert short[:7] == long[:7]
        assert short[8 : 9 + samples] == long[8 : 9 + samples]
    small_manifest = (tmp_path / "genomics" / "samples.csv").read_text()
    assert (folder / "samples.csv").read_text().startswith(small_manifest)


@pytest.mark.parametrize("roster", ["empty", "nobody sequenced"])
def test_without_sequenced_people_the_files_hold_headers_only(tmp_path, people, roster):
    chosen = [] if roster == "empty" else [p for p in people if p.vcf_sample_id is None][:10]
    counts = write_genomics(chosen, tmp_path)
    assert counts == {"genomics/cohort.vcf.gz": 0, "genomics/samples.csv": 0}
    folder = tmp_path / "genomics"
    assert (folder / "samples.csv").read_text() == ",".join(MANIFEST_COLUMNS) + "\n"
    assert (folder / "cohort.vcf.gz.tbi").exists()
    with pysam.VariantFile(str(folder / "cohort.vcf.gz")) as vcf:
        assert list(vcf.header.samples) == []
        assert list(vcf.fetch("chr1")) == []


def test_writing_again_replaces_the_files_and_leaves_no_temporary_files(tmp_path, people):
    write_genomics(people[:60], tmp_path)
    counts = write_genomics(people[:20], tmp_path)
    folder = tmp_path / "genomics"
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    assert len(_manifest(folder)) == counts["genomics/samples.csv"]
    assert counts["genomics/samples.csv"] == len(_sequenced(people[:20]))


def test_write_cohort_writes_the_genomics_silo_next_to_the_ehr(tmp_path):
    summary = write_cohort(tmp_path, patients=12, seed=SEED, silos=("ehr", "genomics"))
    sequenced = len(_sequenced(build_people(12, SEED)))
    assert summary.files["genomics/cohort.vcf.gz"] == SITE_COUNT
    assert summary.files["genomics/samples.csv"] == sequenced > 0
    assert summary.files["ehr/Patient.ndjson"] == 12
    assert (tmp_path / "genomics" / "cohort.vcf.gz.tbi").exists()


def test_write_cohort_still_writes_only_the_ehr_by_default(tmp_path):
    summary = write_cohort(tmp_path, patients=3, seed=SEED)
    assert all(name.startswith("ehr/") for name in summary.files)
    assert not (tmp_path / "genomics").exists()
