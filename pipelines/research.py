"""What every research view is built with: the audience's pseudonyms, date shifts, consent."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from mcp_catalog.governance.consent import consented_people, withdrawn_from_studies
from mcp_catalog.governance.deid import Pseudonyms, date_shifts
from mcp_catalog.governance.views import ViewContext, ViewSpec, build_view
from mcp_catalog.policy import load_policy
from pipelines.consent import CONSENTS_PATH, read_consents
from pipelines.lake import Lake, lookup_writer_properties
from pipelines.lineage import asset_lineage, job_name, table_input, table_output
from pipelines.metadata import freshness_policy, view_schema, write_metadata
from pipelines.resources import LakeResource

CROSSWALK_PATH = "restricted/person_crosswalk"
SURROGATES_PATH = "restricted/surrogates"


def pseudonyms_for(store: Lake, lake: LakeResource, audience: str) -> Pseudonyms:
    """The audience's pseudonym scheme as the policy sets it (keyed or surrogate)."""
    if load_policy().pseudonym_scheme(audience) == "surrogate":
        mapping = store.read(SURROGATES_PATH)
        return Pseudonyms(
            surrogates=mapping.filter(pl.col("audience") == audience).drop("audience")
        )
    return Pseudonyms(key=lake.deid_keys().for_audience(audience))


def research_context(store: Lake, lake: LakeResource, audience: str) -> ViewContext:
    """Pseudonyms, per-person date shifts, DICOM UID key, consent and the studies whose arms
    may be shown, as of now.

    Consent comes from the unified table (``silver/consent/consents``): the people whose
    general research consent permits now, and the ``(person, study)`` pairs whose latest
    trial consent decision does not (consent withdrawn from that study).
    """
    now = datetime.now(UTC)
    crosswalk = store.read(CROSSWALK_PATH)
    keys = lake.deid_keys()
    consents = read_consents(store)
    return ViewContext(
        pseudonyms=pseudonyms_for(store, lake, audience),
        shifts=date_shifts(
            crosswalk.get_column("person_key").unique().to_list(),
            key=keys.date_shift,
        ),
        consented=consented_people(consents, as_of=now),
        reference_date=now.date(),
        uid_key=keys.for_uids(audience),
        unblinded_studies=load_policy().unblinded_studies(),
        withdrawn_from_study=withdrawn_from_studies(consents, as_of=now),
    )


def research_view_asset(
    spec: ViewSpec,
    *,
    empty_without_sources: bool = False,
    automation_condition: dg.AutomationCondition | None = None,
) -> dg.AssetsDefinition:
    """The asset of one research view: built from its silver sources under the audience's
    pseudonyms, date shifts and consent, with the policy's row floors (``suppress_below``)
    applied.

    Views of genomic positions (``spec.region``) are rewritten whole, sorted by position in
    small row groups so region reads prune; the others are MERGEd on their key.

    Args:
        spec: the view.
        empty_without_sources: write an empty view while a source table does not exist yet
            (a site without that silo's feed), rather than fail.
        automation_condition: when Dagster should materialise the view by itself.
    """
    deps = [dg.AssetKey(s.split("/")) for s in (*spec.sources, CONSENTS_PATH)]
    deps += [dg.AssetKey(CROSSWALK_PATH.split("/")), dg.AssetKey(SURROGATES_PATH.split("/"))]

    @dg.asset(
        key=spec.path.split("/"),
        freshness_policy=freshness_policy(spec.path),
        group_name="research",
        deps=deps,
        description=spec.description,
        owners=["team:data-stewards"],
        automation_condition=automation_condition,
        metadata={"dagster/column_schema": view_schema(spec), "audience": spec.audience},
    )
    def _gold(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        store = lake.lake()
        inputs = [table_input(store, p) for p in (*spec.sources, CONSENTS_PATH, CROSSWALK_PATH)]
        with asset_lineage(
            context, store, job=job_name(context.asset_key), inputs=inputs, outputs=[spec.path]
        ) as run:
            ctx = research_context(store, lake, spec.audience)
            if empty_without_sources and any(store.table(s) is None for s in spec.sources):
                context.log.info("a source of the view does not exist yet; the view is empty")
                view = pl.DataFrame(schema={c.name: c.dtype for c in spec.columns})
            else:
                view = build_view(spec, {s: store.read(s) for s in spec.sources}, ctx)
            rules = load_policy().dataset(spec.audience, spec.name)
            floors = rules.suppress_below if rules is not None else {}
            for column, minimum in floors.items():
                view = view.filter(pl.col(column) >= minimum)
            if spec.region is None:
                outcome = store.merge(spec.path, view, list(spec.key), run_id=context.run.run_id)
            else:
                outcome = store.replace_table(
                    spec.path,
                    view,
                    run_id=context.run.run_id,
                    writer_properties=lookup_writer_properties(),
                )
            run.outputs = [
                table_output(
                    store,
                    spec.path,
                    descriptions={c.name: c.description for c in spec.columns},
                    column_lineage=spec.column_lineage(),
                )
            ]
        floors_text = {"suppressed_below": ", ".join(f"{c} < {m}" for c, m in floors.items())}
        return dg.MaterializeResult(
            metadata=write_metadata(
                outcome,
                view.height,
                consented_people=ctx.consented.len(),
                withdrawn_study_consents=len(ctx.withdrawn_from_study),
                **(floors_text if floors else {}),
            )
        )

    return _gold
