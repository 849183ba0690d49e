"""End to end: a landed multi-sample VCF and its sample manifest -> bronze (one partition per
file) -> silver linked to person_key -> research views of variants and genotypes."""

import gzip
from datetime import UTC, datetime

import dagster as dg
import polars as pl
import pysam
import pytest

from connectors.errors import MalformedRecordError
from mcp_catalog.governance.consent import consented_people
from mcp_catalog.policy import load_policy
from pipelines import genomics
from pipelines.cli import materialize
from pipelines.defs.genomics.assets import genomics_landing_sensor, vcf_files
from pipelines.lake import Lake
from pipelines.landing import landing_file
from pipelines.resources import LandingResource
from tests.pipelines.conftest import call_tool

VCF = "cohort.vcf.gz"


def _consented_samples(lake: Lake) -> dict[str, str]:
    """sample_id -> person_key of the sequenced people who consented to research now."""
    consented = set(
        consented_people(lake.read("silver/consent/consents"), as_of=datetime.now(UTC)).to_list()
    )
    links = genomics.sample_links(
        lake.read(genomics.SAMPLES_PATH), lake.read("restricted/person_crosswalk")
    )
    return {s: p for s, p in links.iter_rows() if p in consented}


def test_the_landed_vcf_fills_bronze_partitioned_by_chromosome(materialised_lake):
    lake = Lake(materialised_lake.root)
    landed = landing_file(materialised_lake.landing / "genomics" / VCF,
                          materialised_lake.landing / "genomics")  # fmt: skip
    ledger = lake.read(genomics.FILES_PATH)
    assert ledger.select("source_file", "source_sha256").rows() == [(VCF, landed.sha256)]
    row = ledger.row(0, named=True)
    with pysam.VariantFile(str(landed.path)) as vcf:
        samples = list(vcf.header.samples)
        records = sum(1 for _ in vcf)
    assert row["records"] == records and row["rejected"] == 0
    assert row["samples"] == samples and row["compression"] == "bgzf" and row["index"] == "tbi"
    for path in (genomics.VARIANTS_PATH, genomics.GENOTYPES_PATH):
        assert lake.table(path).metadata().partition_columns == ["chrom"]
    assert lake.row_count(genomics.GENOTYPES_PATH) == records * len(samples)
    assert lake.row_count(genomics.VARIANTS_PATH) == row["variants"] > records


def test_silver_genotypes_are_linked_to_person_key_through_the_manifest(materialised_lake):
    lake = Lake(materialised_lake.root)
    silver = lake.read(genomics.SILVER_GENOTYPES_PATH)
    links = genomics.sample_links(
        lake.read(genomics.SAMPLES_PATH), lake.read("restricted/person_crosswalk")
    )
    assert links.get_column("person_key").null_count() == 0
    expected = dict(links.iter_rows())
    pairs = silver.select("sample_id", "person_key").unique().rows()
    assert pairs and all(expected[sample] == person for sample, person in pairs)
    # Every silver chromosome is sorted by position: region reads prune row groups.
    for _, part in silver.group_by("chrom"):
        assert part.get_column("pos").is_sorted()


def test_allele_frequencies_match_an_independent_count_over_consented_samples(
    materialised_lake,
):
    lake = Lake(materialised_lake.root)
    consented = set(_consented_samples(lake))
    floor = load_policy().datasets["research/variant_frequencies"].suppress_below["allele_count"]
    expected = {}
    with pysam.VariantFile(str(materialised_lake.landing / "genomics" / VCF)) as vcf:
        for record in vcf:
            calls = [record.samples[s]["GT"] for s in record.samples if s in consented]
            alleles = [a for gt in calls for a in gt if a is not None]
            for index, alt in enumerate(record.alts or (), start=1):
                count = sum(a == index for a in alleles)
                if count >= floor:
                    expected[(record.chrom, record.pos, record.ref, alt)] = (count, len(alleles))
    gold = lake.read("gold/research/variant_frequencies")
    found = {
        (c, p, r, a): (ac, an)
        for c, p, r, a, ac, an in gold.select(
            "chrom", "pos", "ref", "alt", "allele_count", "allele_number"
        ).iter_rows()
    }
    assert found == expected
    assert gold.get_column("allele_count").min() >= floor
    assert gold.select(pl.col("chrom"), pl.col("pos")).equals(
        gold.select("chrom", "pos").sort("chrom", "pos")
    )


def test_the_genotype_view_holds_consented_people_under_research_pseudonyms(
    materialised_lake,
):
    lake = Lake(materialised_lake.root)
    genotypes = lake.read("gold/research/genotypes")
    patients = set(lake.read("gold/research/patients").get_column("person_pseudonym"))
    people = set(genotypes.get_column("person_pseudonym"))
    assert people and people <= patients
    assert len(people) == len(set(_consented_samples(lake).values()))
    zygosity = set(genotypes.get_column("zygosity"))
    assert {"hom_ref", "het", "hom_alt"} <= zygosity
    hets = genotypes.filter(pl.col("zygosity") == "het")
    assert set(hets.get_column("alt_allele_copies")) == {1}


def test_a_rerun_of_an_unchanged_file_commits_nothing(materialised_lake):
    lake = Lake(materialised_lake.root)
    landed = landing_file(materialised_lake.landing / "genomics" / VCF,
                          materialised_lake.landing / "genomics")  # fmt: skip
    assert genomics.already_ingested(lake, landed)


def test_the_sensor_adds_a_partition_and_requests_a_run_per_new_or_changed_file(tmp_path):
    folder = tmp_path / "landing" / "genomics"
    folder.mkdir(parents=True)
    (folder / "a.vcf").write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\n")
    resources = {"landing": LandingResource(root=str(tmp_path / "landing"))}
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        first = genomics_landing_sensor(context)
        assert [r.partition_key for r in first.run_requests] == ["a.vcf"]
        assert first.dynamic_partitions_requests[0].partition_keys == ["a.vcf"]
        instance.add_dynamic_partitions(vcf_files.name, ["a.vcf"])
        again = genomics_landing_sensor(
            dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor)
        )
        assert again.run_requests == [] and again.dynamic_partitions_requests == []
        with (folder / "a.vcf").open("a") as handle:
            handle.write("chr1\t1\t.\tA\tC\t.\n")
        changed = genomics_landing_sensor(
            dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor)
        )
        assert [r.partition_key for r in changed.run_requests] == ["a.vcf"]
        assert changed.dynamic_partitions_requests == []


def test_a_malformed_record_is_quarantined_with_its_line_and_the_rest_ingested(tmp_path):
    folder = tmp_path / "landing" / "genomics"
    folder.mkdir(parents=True)
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=chr1,length=1000>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1",
        "chr1\t10\t.\tA\tC\t50\tPASS\t.\tGT\t0/1",
        "chr1\tten\t.\tA\tC\t50\tPASS\t.\tGT\t0/1",
        "chr1\t30\t.\tG\tT\t50\tPASS\t.\tGT\t1/1",
    ]
    (folder / "bad.vcf").write_text("\n".join(lines) + "\n")
    lake = Lake(tmp_path / "lake")
    ingest = genomics.ingest_vcf(
        lake, landing_file(folder / "bad.vcf", folder), run_id="r1", ingested_at=datetime.now(UTC)
    )
    rejects = lake.read(genomics.REJECTS_PATH)
    assert rejects.select("source", "locator").rows() == [("bad.vcf", "line:6")]
    assert "ten" not in rejects.item(0, "reason")
    assert ingest.rejected == 1
    assert sorted(lake.read(genomics.VARIANTS_PATH).get_column("pos")) == [10, 30]
    assert sorted(lake.read(genomics.GENOTYPES_PATH).get_column("pos")) == [10, 30]


def test_a_file_that_breaks_mid_stream_commits_nothing(tmp_path, materialised_lake):
    folder = tmp_path / "genomics"
    folder.mkdir()
    source = materialised_lake.landing / "genomics" / VCF
    lines = gzip.decompress(source.read_bytes()).splitlines(keepends=True)
    header = [line for line in lines if line.startswith(b"#")]
    body = [line for line in lines if not line.startswith(b"#")]
    broken = folder / "broken.vcf.gz"
    # A gzip stream cut in the middle: the reader fails after some batches were handed over.
    data = gzip.compress(b"".join(header + body * 4))
    broken.write_bytes(data[: len(data) * 3 // 4])
    lake = Lake(tmp_path / "lake")
    with pytest.raises(MalformedRecordError, match="truncated") as caught:
        genomics.ingest_vcf(
            lake,
            landing_file(broken, folder),
            run_id="r1",
            ingested_at=datetime.now(UTC),
            batch_bytes=1 << 16,
        )
    assert caught.value.source == "broken.vcf.gz" and caught.value.locator.startswith("line:")
    for path in (genomics.VARIANTS_PATH, genomics.GENOTYPES_PATH, genomics.FILES_PATH):
        assert lake.table(path) is None, path


def test_materialize_without_genomics_or_imaging_feeds_serves_their_views_empty(tmp_path):
    from connectors.synth import write_cohort

    landing, root = tmp_path / "landing", tmp_path / "lake"
    write_cohort(landing, patients=8, seed=3, silos=("ehr",))
    with dg.instance_for_test() as instance:
        assert materialize(str(root), str(landing), instance=instance).success
    lake = Lake(root)
    assert lake.read("gold/research/variant_frequencies").height == 0
    assert lake.read("gold/research/genotypes").height == 0
    for view in ("imaging_studies", "imaging_series", "imaging_instances"):
        assert lake.read(f"gold/research/{view}").height == 0


@pytest.mark.anyio
async def test_a_region_query_through_mcp_returns_the_overlapping_variants(materialised_lake):
    lake = Lake(materialised_lake.root)
    gold = lake.read("gold/research/variant_frequencies")
    chrom, pos = gold.select("chrom", "pos").row(gold.height // 2)
    region = {"chrom": chrom, "start": pos - 1000, "end": pos + 1000}
    tools, result = await call_tool(
        materialised_lake.root, "researcher", "research", "query_variant_frequencies",
        {"region": region, "limit": 100},
    )  # fmt: skip
    assert {"query_variant_frequencies", "aggregate_genotypes"} <= tools
    assert "query_genotypes" not in tools
    assert not result.is_error, result.content
    expected = gold.filter(
        pl.col("chrom") == chrom, pl.col("pos") <= pos + 1000, pl.col("end") >= pos - 1000
    )
    rows = result.structured_content["rows"]
    assert [(r["chrom"], r["pos"], r["alt"]) for r in rows] == expected.select(
        "chrom", "pos", "alt"
    ).rows()
    assert min(r["allele_count"] for r in rows) >= 11


@pytest.mark.anyio
async def test_only_data_stewards_read_per_person_genotypes_and_researchers_count_them(
    materialised_lake,
):
    lake = Lake(materialised_lake.root)
    gold = lake.read("gold/research/variant_frequencies")
    chrom, pos = gold.select("chrom", "pos").row(0)
    site = {"chrom": chrom, "start": pos, "end": pos}
    _, rows = await call_tool(
        materialised_lake.root, "data_steward", "quality_improvement", "query_genotypes",
        {"region": site, "limit": 500},
    )  # fmt: skip
    assert not rows.is_error, rows.content
    page = rows.structured_content["rows"]
    assert page and {r["pos"] for r in page} == {pos}
    people = {r["person_pseudonym"] for r in page}
    _, counts = await call_tool(
        materialised_lake.root, "researcher", "research", "aggregate_genotypes",
        {"group_by": ["zygosity"], "region": site},
    )  # fmt: skip
    assert not counts.is_error, counts.content
    cells = counts.structured_content["cells"]
    assert counts.structured_content["total_people"] == len(people)
    assert all(c["people"] is None or c["people"] >= 11 for c in cells)


@pytest.fixture
def anyio_backend():
    return "asyncio"
