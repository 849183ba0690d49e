"""Consent across silos: FHIR Consent and SDTM disposition records -> one consent table that
every research view, and the research consent table the catalog server re-reads, are built
from."""

import dagster as dg

from mcp_catalog.governance.consent import CONSENT_DESCRIPTIONS, CONSENT_SCHEMA
from pipelines import consent
from pipelines.lineage import asset_lineage, job_name, table_input, table_output
from pipelines.metadata import freshness_policy, write_metadata
from pipelines.resources import LakeResource

GROUP = "consent"

_FHIR, _DS = consent.FHIR_CONSENTS_PATH, consent.TRIAL_DS_PATH
COLUMN_LINEAGE: dict[str, tuple[tuple[str, str], ...]] = {
    "consent_id": ((_FHIR, "id"), (_DS, "studyid"), (_DS, "usubjid"), (_DS, "dsseq")),
    "person_key": ((_FHIR, "person_key"), (_DS, "person_key")),
    "scope": ((_FHIR, "scope"), (_DS, "studyid")),
    "study_id": ((_DS, "studyid"),),
    "decision": ((_FHIR, "provision_type"), (_DS, "dsdecod"), (_DS, "dsterm"), (_DS, "dscat")),
    "status": ((_FHIR, "status"),),
    "provision_start": ((_FHIR, "provision_start"),),
    "provision_end": ((_FHIR, "provision_end"),),
    "recorded_at": ((_FHIR, "date_time"), (_DS, "dsstdtc"), (_DS, "dsdtc")),
    "basis": ((_DS, "dsdecod"), (_DS, "dsterm"), (_DS, "dscat")),
    "source_silo": (),
    "source_file": ((_FHIR, "source_file"), (_DS, "source_file")),
    "source_locator": ((_FHIR, "source_locator"), (_DS, "source_locator")),
}
"""Where each column of the consent table comes from, for the OpenLineage column facet."""


@dg.asset(
    key=consent.CONSENTS_PATH.split("/"),
    group_name=GROUP,
    deps=[dg.AssetKey(p.split("/")) for p in consent.SOURCE_PATHS],
    freshness_policy=freshness_policy(consent.CONSENTS_PATH),
    automation_condition=dg.AutomationCondition.eager(),
    description="Every consent decision of every silo, one row per source record: FHIR "
    "Consent (general, by scope) and SDTM disposition records (informed consent obtained: "
    "permit; consent withdrawn: deny; scope trial:<STUDYID>). The latest decision per "
    "person, scope and study wins; research views and the research consent table are built "
    "from it. Restricted: holds person keys.",
    owners=["team:data-stewards"],
    metadata={
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(name, str(dtype), description=CONSENT_DESCRIPTIONS[name])
                for name, dtype in CONSENT_SCHEMA.items()
            ]
        )
    },
)
def silver_consents(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Rebuilds the consent table from both sources; commits nothing when unchanged."""
    store = lake.lake()
    inputs = [table_input(store, p) for p in consent.SOURCE_PATHS if store.table(p) is not None]
    with asset_lineage(
        context,
        store,
        job=job_name(context.asset_key),
        inputs=inputs,
        outputs=[consent.CONSENTS_PATH],
    ) as run:
        built = consent.build_from_lake(store)
        outcome = store.merge(
            consent.CONSENTS_PATH, built.table, list(consent.KEY), run_id=context.run.run_id
        )
        run.outputs = [
            table_output(
                store,
                consent.CONSENTS_PATH,
                descriptions=CONSENT_DESCRIPTIONS,
                column_lineage={c: p for c, p in COLUMN_LINEAGE.items() if p},
            )
        ]
    if built.unlinked_fhir_records:
        context.log.warning(
            f"{built.unlinked_fhir_records} FHIR Consent records name a patient the crosswalk "
            "does not know; they govern nobody until the patient is linked"
        )
    return dg.MaterializeResult(
        metadata=write_metadata(
            outcome,
            built.table.height,
            fhir_records=built.fhir_records,
            unlinked_fhir_records=built.unlinked_fhir_records,
            ds_records=built.ds_records,
            permits=built.count(decision="permit"),
            denials=built.count(decision="deny"),
            trial_consents_obtained=built.count(basis="informed_consent_obtained"),
            trial_consents_withdrawn=built.count(basis="consent_withdrawn"),
        )
    )
