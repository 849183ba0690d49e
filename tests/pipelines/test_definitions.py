import dagster as dg

from connectors.sdtm import RULES
from mcp_catalog.governance.genomics import GENOMIC_VIEWS
from mcp_catalog.governance.imaging import IMAGING_VIEWS
from mcp_catalog.governance.lab import LAB_VIEWS
from mcp_catalog.governance.trials import TRIAL_VIEWS
from mcp_catalog.governance.views import RESEARCH_VIEWS
from pipelines import identity
from pipelines.checks import lake_path
from pipelines.definitions import build_definitions, defs
from pipelines.defs.trials.checks import KEY_RULES
from pipelines.ehr import BRONZE_TABLES, SILVER_TABLES
from pipelines.trials import DOMAINS


def test_the_code_location_loads_and_validates():
    dg.Definitions.validate_loadable(defs())


def test_every_layer_of_every_silo_is_an_asset():
    keys = {k.to_user_string() for k in build_definitions().resolve_all_asset_keys()}
    expected = {f"bronze/ehr/{t}" for t in (*BRONZE_TABLES, "files", "rejects")}
    expected |= {f"silver/ehr/{t}" for t in SILVER_TABLES}
    expected |= {f"gold/research/{v.name}" for v in RESEARCH_VIEWS}
    expected |= {"restricted/person_crosswalk", "restricted/identity_conflicts"}
    expected |= {"catalog", "gold/research/_consent"}
    expected |= {"restricted/surrogates", "silver/consent/consents"}
    expected |= {f"bronze/genomics/{t}" for t in ("variants", "genotypes", "vcf_files", "rejects")}
    expected |= {"bronze/genomics/samples", "silver/genomics/variants", "silver/genomics/genotypes"}
    expected |= {f"gold/research/{v.name}" for v in GENOMIC_VIEWS}
    expected |= {f"bronze/imaging/{t}" for t in ("instances", "batches", "rejects", "orders")}
    expected |= {f"silver/imaging/dicom_{t}" for t in ("instances", "series", "studies")}
    expected |= {f"gold/research/{v.name}" for v in IMAGING_VIEWS}
    lab = ("results", "messages", "rejects", "files", "patient_index")
    expected |= {f"bronze/lab/{t}" for t in lab}
    expected |= {"silver/lab/lab_results", "silver/lab/mapping_report"}
    expected |= {f"gold/research/{v.name}" for v in LAB_VIEWS}
    trials = ("other_domains", "findings", "variables", "files", "rejects", "enrolment")
    expected |= {f"bronze/trials/{t}" for t in (*DOMAINS, *trials)}
    expected |= {f"silver/trials/{d}" for d in DOMAINS}
    expected |= {f"gold/research/{v.name}" for v in TRIAL_VIEWS}
    assert keys == expected


def test_conformance_rules_that_break_keys_block_the_silver_trial_tables():
    definitions = build_definitions()
    graph = definitions.resolve_asset_graph()
    for domain in DOMAINS:
        parents = graph.get(dg.AssetKey(["silver", "trials", domain])).parent_keys
        assert dg.AssetKey(["bronze", "trials", "findings"]) in parents
    checks = {
        spec.name: spec.blocking
        for checks in definitions.asset_checks or []
        for spec in checks.check_specs
        if spec.asset_key == dg.AssetKey(["bronze", "trials", "findings"])
    }
    assert checks == {f"sdtm_{rule}": rule in KEY_RULES for rule in RULES}
    assert set(KEY_RULES) == {"usubjid_not_unique_in_dm", "seq_not_unique", "domain_mismatch"}


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
                "silver/consent/consents",
                "restricted/person_crosswalk",
                "restricted/surrogates",
            }
            == parents
        )


def test_the_crosswalk_and_its_quarantine_are_one_build_each_with_a_blocking_suite():
    definitions = build_definitions()
    graph = definitions.resolve_asset_graph()
    crosswalk = dg.AssetKey(["restricted", "person_crosswalk"])
    conflicts = dg.AssetKey(["restricted", "identity_conflicts"])
    node = graph.get(crosswalk).assets_def
    assert node is graph.get(conflicts).assets_def
    assert node.keys == {crosswalk, conflicts}
    assert graph.get(conflicts).parent_keys == graph.get(crosswalk).parent_keys
    assert dg.AssetKey(["bronze", "trials", "enrolment"]) in graph.get(conflicts).parent_keys
    checks = {
        (spec.asset_key, spec.name): spec.blocking
        for checks in definitions.asset_checks or []
        for spec in checks.check_specs
        if spec.asset_key in (crosswalk, conflicts)
    }
    assert checks == {(crosswalk, "quality_suite"): True, (conflicts, "quality_suite"): True}
    assert lake_path("restricted/identity_conflicts") == identity.CONFLICTS_PATH
    # Either table alone can be selected: the build writes both, and records those asked for.
    job = definitions.resolve_implicit_global_asset_job_def()
    for key in (crosswalk, conflicts):
        assert job.get_subset(asset_selection={key}).asset_layer.selected_asset_keys == {key}
