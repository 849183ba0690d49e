import dagster as dg

from mcp_catalog.governance.genomics import GENOMIC_VIEWS
from mcp_catalog.governance.imaging import IMAGING_VIEWS
from mcp_catalog.governance.views import RESEARCH_VIEWS
from pipelines.definitions import build_definitions, defs
from pipelines.ehr import BRONZE_TABLES, SILVER_TABLES


def test_the_code_location_loads_and_validates():
    dg.Definitions.validate_loadable(defs())


def test_every_layer_of_every_silo_is_an_asset():
    keys = {k.to_user_string() for k in build_definitions().resolve_all_asset_keys()}
    expected = {f"bronze/ehr/{t}" for t in (*BRONZE_TABLES, "files", "rejects")}
    expected |= {f"silver/ehr/{t}" for t in SILVER_TABLES}
    expected |= {f"gold/research/{v.name}" for v in RESEARCH_VIEWS}
    expected |= {"restricted/person_crosswalk", "catalog", "gold/research/_consent"}
    expected |= {"restricted/surrogates"}
    expected |= {f"bronze/genomics/{t}" for t in ("variants", "genotypes", "vcf_files", "rejects")}
    expected |= {"bronze/genomics/samples", "silver/genomics/variants", "silver/genomics/genotypes"}
    expected |= {f"gold/research/{v.name}" for v in GENOMIC_VIEWS}
    expected |= {f"bronze/imaging/{t}" for t in ("instances", "batches", "rejects", "orders")}
    expected |= {f"silver/imaging/dicom_{t}" for t in ("instances", "series", "studies")}
    expected |= {f"gold/research/{v.name}" for v in IMAGING_VIEWS}
    assert keys == expected


def test_bronze_and_silver_genomics_have_a_partition_per_landed_vcf():
    graph = build_definitions().resolve_asset_graph()
    for key in ("bronze/genomics/genotypes", "silver/genomics/genotypes"):
        partitions = graph.get(dg.AssetKey(key.split("/"))).partitions_def
        assert isinstance(partitions, dg.DynamicPartitionsDefinition)
        assert partitions.name == "vcf_files"
    frequencies = graph.get(dg.AssetKey(["gold", "research", "variant_frequencies"]))
    assert frequencies.partitions_def is None


def test_bronze_imaging_has_a_partition_per_landed_batch_and_silver_reads_them_all():
    graph = build_definitions().resolve_asset_graph()
    for key in ("bronze/imaging/instances", "bronze/imaging/batches"):
        partitions = graph.get(dg.AssetKey(key.split("/"))).partitions_def
        assert isinstance(partitions, dg.DynamicPartitionsDefinition)
        assert partitions.name == "dicom_batches"
    for key in ("bronze/imaging/orders", "silver/imaging/dicom_instances"):
        assert graph.get(dg.AssetKey(key.split("/"))).partitions_def is None


def test_gold_views_depend_on_their_silver_sources_and_consent():
    graph = build_definitions().resolve_asset_graph()
    for spec in RESEARCH_VIEWS:
        parents = {
            k.to_user_string() for k in graph.get(dg.AssetKey(spec.path.split("/"))).parent_keys
        }
        assert (
            set(spec.sources)
            | {
                "silver/ehr/consents",
                "restricted/person_crosswalk",
                "restricted/surrogates",
            }
            == parents
        )
