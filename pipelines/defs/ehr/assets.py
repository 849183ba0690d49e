"""EHR silo: FHIR landing files -> bronze -> person crosswalk -> silver -> research gold views."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from connectors.fhir.schema import table_columns
from mcp_catalog.governance.consent import consent_status
from mcp_catalog.governance.deid import (
    SURROGATE_SCHEMA,
    new_surrogates,
)
from mcp_catalog.governance.lab import LAB_VIEWS, lab_record_identifiers
from mcp_catalog.governance.trials import TRIAL_VIEWS, trial_record_identifiers
from mcp_catalog.governance.views import (
    RESEARCH_VIEWS,
    surrogate_identifiers,
)
from mcp_catalog.policy import load_policy
from pipelines import ehr, identity
from pipelines.consent import CONSENTS_PATH, read_consents
from pipelines.lineage import asset_lineage, job_name, table_input, table_output
from pipelines.metadata import column_schema, freshness_policy, write_metadata
from pipelines.research import (
    CROSSWALK_PATH,
    SURROGATES_PATH,
    pseudonyms_for,
    research_view_asset,
)
from pipelines.resources import LakeResource, LandingResource
from quality.lineage import LineageDataset

GROUP = "ehr"
FILES_PATH = "bronze/ehr/files"
REJECTS_PATH = "_rejects/ehr/fhir"
CONSENT_STATUS_PATH = "gold/research/_consent"


def bronze_path(table: str) -> str:
    return f"bronze/ehr/{table}"


def silver_path(table: str) -> str:
    return f"silver/ehr/{table}"


@dg.multi_asset(
    group_name=GROUP,
    specs=[
        dg.AssetSpec(
            ["bronze", "ehr", "files"],
            freshness_policy=freshness_policy(FILES_PATH),
            description="Ledger of ingested FHIR landing files: "
            "path, sha256, size, record and reject counts.",
        ),
        dg.AssetSpec(
            ["bronze", "ehr", "rejects"],
            freshness_policy=freshness_policy("bronze/ehr/rejects"),
            description="Quarantined FHIR records: file, "
            "locator and reason (never the record's values).",
        ),
        *[
            dg.AssetSpec(
                ["bronze", "ehr", t],
                freshness_policy=freshness_policy(bronze_path(t)),
                description=f"FHIR {t} as read, with provenance "
                "(source file, sha256, locator, ingested_at) and the full resource JSON.",
                metadata={"dagster/column_schema": column_schema(table_columns(t))},
            )
            for t in ehr.BRONZE_TABLES
        ],
    ],
)
def bronze_ehr(context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource):
    """Reads new or changed FHIR files from ``landing/ehr`` and replaces their rows in bronze."""
    store = lake.lake()
    run_id = context.run.run_id
    folder = landing.silo("ehr")
    files = ehr.scan_landing(folder)
    if not files:
        raise dg.Failure(
            f"No FHIR files (.ndjson, .ndjson.gz, .json) under {folder}. Generate a "
            "cohort with `biofed synth --out landing` or drop a bulk export there."
        )
    ledger = store.read(FILES_PATH) if store.table(FILES_PATH) is not None else None
    changed = ehr.changed_files(files, ledger)
    context.log.info(f"{len(files)} landing files, {len(changed)} new or changed")
    paths = [*(bronze_path(t) for t in ehr.BRONZE_TABLES), REJECTS_PATH, FILES_PATH]
    sources = [LineageDataset(uri=str(f.path.resolve()), version=f.sha256) for f in files]
    results = []
    with asset_lineage(context, store, job="bronze.ehr", inputs=sources, outputs=paths) as run:
        batch = ehr.read_bronze(changed, ingested_at=datetime.now(UTC))
        for table in ehr.BRONZE_TABLES:
            path = bronze_path(table)
            outcome = store.replace_sources(
                path, batch.tables[table], batch.changed_sources, run_id=run_id
            )
            results.append(
                (["bronze", "ehr", table], write_metadata(outcome, store.row_count(path)))
            )
        outcome = store.replace_sources(
            REJECTS_PATH,
            batch.rejects,
            batch.changed_sources,
            run_id=run_id,
            source_column="source",
        )
        results.append(
            (
                ["bronze", "ehr", "rejects"],
                write_metadata(
                    outcome, store.row_count(REJECTS_PATH), rejects_this_run=batch.rejects.height
                ),
            )
        )
        ledger_rows = ehr.ledger_update(files, ledger, batch)
        outcome = (
            store.merge(
                FILES_PATH, ledger_rows, ["source_file"], run_id=run_id, delete_missing=False
            )
            if ledger_rows.height
            else store.unchanged(FILES_PATH)
        )
        results.append(
            (
                ["bronze", "ehr", "files"],
                write_metadata(outcome, store.row_count(FILES_PATH), files_changed=len(changed)),
            )
        )
        run.outputs = [table_output(store, p) for p in paths]
    for key, metadata in results:
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)


CROSSWALK_KEY = dg.AssetKey(["restricted", "person_crosswalk"])
IDENTITY_CONFLICTS_KEY = dg.AssetKey(["restricted", "identity_conflicts"])
"""The identity quarantine's asset; its rows live at ``identity.CONFLICTS_PATH``."""
_CROSSWALK_DEPS = [
    dg.AssetKey(["bronze", "ehr", "patients"]),
    *(dg.AssetKey(path.split("/")) for path in identity.MANIFESTS),
]


@dg.multi_asset(
    group_name=GROUP,
    # Both tables come from one build and are always written together, so they never
    # disagree; a run that selects one records only that one.
    can_subset=True,
    specs=[
        dg.AssetSpec(
            CROSSWALK_KEY,
            freshness_policy=freshness_policy(CROSSWALK_PATH),
            deps=_CROSSWALK_DEPS,
            description="Restricted: links every source identifier (FHIR Patient id and MRN, "
            "lab patient id per site, DICOM PatientID, VCF sample id, trial USUBJID per study) "
            "to one random person_key, through the silos' manifests and their own link rules; "
            "link_rule says which. Append-only: a link never moves. Rows that cannot be linked "
            "(an MRN no EHR patient holds, an identifier claimed by two people or moved to "
            "another) are quarantined in restricted/identity_conflicts with a reason. Never "
            "exposed to any audience.",
        ),
        dg.AssetSpec(
            IDENTITY_CONFLICTS_KEY,
            freshness_policy=freshness_policy(IDENTITY_CONFLICTS_KEY.to_user_string()),
            deps=_CROSSWALK_DEPS,
            description="Restricted: the source rows whose identity was quarantined instead of "
            "linked, written with the person crosswalk: source system, identifier type, the "
            "identifier's SHA-256 (never its value), reason, source file and locator. Silver "
            "leaves an identifier quarantined as undecided and not in the crosswalk unlinked "
            f"(identity_conflict). Stored at {identity.CONFLICTS_PATH}; never exposed to any "
            "audience.",
        ),
    ],
)
def person_crosswalk(context: dg.AssetExecutionContext, lake: LakeResource):
    store = lake.lake()
    manifests = [p for p in identity.MANIFESTS if store.table(p) is not None]
    inputs = [table_input(store, p) for p in (identity.PATIENTS_PATH, *manifests)]
    outputs = [CROSSWALK_PATH, identity.CONFLICTS_PATH]
    with asset_lineage(
        context, store, job=job_name(CROSSWALK_KEY), inputs=inputs, outputs=outputs
    ) as run:
        current = store.read(CROSSWALK_PATH) if store.table(CROSSWALK_PATH) is not None else None
        build = identity.build_crosswalk(
            store.read(identity.PATIENTS_PATH),
            {p: store.read(p) for p in manifests},
            current,
            linked_at=datetime.now(UTC),
        )
        changes = pl.concat([build.rows, build.relabelled])
        if current is not None and "link_rule" not in current.columns:
            # Written before link rules were recorded: add the column to every row once
            # (people unchanged), so the MERGE below can compare it.
            store.replace_table(
                CROSSWALK_PATH, identity.with_link_rules(current), run_id=context.run.run_id
            )
            changes = build.rows
        if changes.height:
            outcome = store.merge(
                CROSSWALK_PATH,
                changes,
                list(ehr.CROSSWALK_KEY),
                run_id=context.run.run_id,
                delete_missing=False,
            )
        else:
            outcome = store.unchanged(CROSSWALK_PATH)
        quarantined = store.replace_table(
            identity.CONFLICTS_PATH, build.conflicts, run_id=context.run.run_id
        )
        run.outputs = [table_output(store, p) for p in outputs]
    conflicts = build.conflict_counts()
    by_reason = {f"conflicts_{reason}": n for reason, n in conflicts.items()}
    if build.conflicts.height:
        context.log.warning(
            f"{build.conflicts.height} source rows not linked to a person ("
            + ", ".join(f"{reason} {n}" for reason, n in conflicts.items() if n)
            + f"); their files and locators are in {identity.CONFLICTS_PATH}"
        )
    skipped = sorted(set(identity.MANIFESTS) - set(manifests))
    if CROSSWALK_KEY in context.selected_asset_keys:
        yield dg.MaterializeResult(
            asset_key=CROSSWALK_KEY,
            metadata=write_metadata(
                outcome,
                store.row_count(CROSSWALK_PATH),
                new_identities=build.rows.height,
                new_by_source_system=dg.MetadataValue.json(build.new_by_system()),
                conflicts=build.conflicts.height,
                **by_reason,
                manifests_read=", ".join(manifests) or "none",
                manifests_not_landed=", ".join(skipped) or "none",
            ),
        )
    if IDENTITY_CONFLICTS_KEY in context.selected_asset_keys:
        yield dg.MaterializeResult(
            asset_key=IDENTITY_CONFLICTS_KEY,
            metadata=write_metadata(quarantined, build.conflicts.height, **by_reason),
        )


def _silver_asset(table: str) -> dg.AssetsDefinition:
    columns = [c for c in table_columns(table) if c.name != "resource_json"]
    descriptions = {c.name: c.description for c in columns}

    @dg.asset(
        key=["silver", "ehr", table],
        freshness_policy=freshness_policy(silver_path(table)),
        group_name=GROUP,
        deps=[
            dg.AssetKey(["bronze", "ehr", table]),
            dg.AssetKey(["restricted", "person_crosswalk"]),
        ],
        description=f"FHIR {table}, typed, one row per FHIR id, linked to person_key.",
        metadata={"dagster/column_schema": column_schema(columns)},
    )
    def _silver(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        store = lake.lake()
        path = bronze_path(table)
        if store.table(path) is None:
            raise dg.Failure(
                f"bronze/ehr/{table} does not exist: no landing file held {table}. "
                "Check the landing folder and materialise bronze_ehr first."
            )
        inputs = [table_input(store, path), table_input(store, CROSSWALK_PATH)]
        with asset_lineage(
            context,
            store,
            job=job_name(context.asset_key),
            inputs=inputs,
            outputs=[silver_path(table)],
        ) as run:
            latest = ehr.latest_per_id(store.read(path))
            quarantined = 0
            if table == "observations":
                latest, component_rejects = ehr.with_components(latest)
                quarantined = component_rejects.height
                if quarantined:
                    context.log.warning(
                        f"{quarantined} observation components quarantined at "
                        f"{component_rejects.select('source', 'locator').head(20).rows()}"
                    )
            frame = ehr.silver_frame(latest, store.read(CROSSWALK_PATH), table)
            outcome = store.merge(silver_path(table), frame, ["id"], run_id=context.run.run_id)
            run.outputs = [table_output(store, silver_path(table), descriptions=descriptions)]
        unlinked = frame.get_column("person_key").null_count()
        return dg.MaterializeResult(
            metadata=write_metadata(
                outcome, frame.height, unlinked_rows=unlinked, quarantined_components=quarantined
            )
        )

    return _silver


_SURROGATE_TABLE_SCHEMA = {"audience": pl.String(), **SURROGATE_SCHEMA}

_OTHER_RECORD_KEYS = (
    (LAB_VIEWS, lab_record_identifiers),
    (TRIAL_VIEWS, trial_record_identifiers),
)
"""Views of other silos with record pseudonyms, and the identifiers they pseudonymise: their
surrogates are drawn here too once their silver tables exist."""
_OTHER_SOURCES = sorted({s for views, _ in _OTHER_RECORD_KEYS for v in views for s in v.sources})


@dg.asset(
    key=SURROGATES_PATH.split("/"),
    freshness_policy=freshness_policy(SURROGATES_PATH),
    group_name="research",
    deps=[
        dg.AssetKey(["restricted", "person_crosswalk"]),
        *(
            dg.AssetKey(s.split("/"))
            for s in sorted({s for v in RESEARCH_VIEWS for s in v.sources})
        ),
        *(dg.AssetKey(s.split("/")) for s in _OTHER_SOURCES),
    ],
    description="Random surrogates for every identifier of the audiences whose policy scheme "
    "is `surrogate`: audience, prefix, identifier, surrogate. Append-only, so a surrogate never "
    "changes. Restricted: never exposed to any audience.",
    owners=["team:data-stewards"],
)
def surrogates(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    store = lake.lake()
    sources = sorted({s for v in RESEARCH_VIEWS for s in v.sources})
    inputs = [table_input(store, p) for p in (CROSSWALK_PATH, *sources)]
    with asset_lineage(
        context, store, job=job_name(context.asset_key), inputs=inputs, outputs=[SURROGATES_PATH]
    ):
        policy = load_policy()
        existing = (
            store.read(SURROGATES_PATH)
            if store.table(SURROGATES_PATH) is not None
            else pl.DataFrame(schema=_SURROGATE_TABLE_SCHEMA)
        )
        added = pl.DataFrame(schema=_SURROGATE_TABLE_SCHEMA)
        audiences = sorted({v.audience for v in RESEARCH_VIEWS})
        for audience in audiences:
            if policy.pseudonym_scheme(audience) != "surrogate":
                continue
            specs = tuple(v for v in RESEARCH_VIEWS if v.audience == audience)
            wanted = surrogate_identifiers(
                {s: store.read(s) for s in {s for v in specs for s in v.sources}},
                store.read(CROSSWALK_PATH).get_column("person_key"),
                specs,
            )
            wanted = pl.concat([wanted, *_other_record_keys(store, audience)])
            fresh = new_surrogates(
                wanted, existing.filter(pl.col("audience") == audience).drop("audience")
            )
            added = pl.concat([added, fresh.select(pl.lit(audience).alias("audience"), pl.all())])
        outcome = store.insert_new(
            SURROGATES_PATH,
            added,
            ["audience", "prefix", "identifier"],
            run_id=context.run.run_id,
        )
    return dg.MaterializeResult(
        metadata=write_metadata(
            outcome,
            existing.height + added.height,
            new_surrogates=added.height,
            schemes=", ".join(f"{a}: {policy.pseudonym_scheme(a)}" for a in audiences),
        )
    )


def _other_record_keys(store, audience: str) -> list[pl.DataFrame]:
    """The record identifiers of the other silos' views of ``audience`` whose sources
    exist (a lake without a lab or trial feed has none)."""
    parts = []
    for views, identifiers in _OTHER_RECORD_KEYS:
        paths = sorted({s for v in views if v.audience == audience for s in v.sources})
        if paths and all(store.table(p) is not None for p in paths):
            parts.append(identifiers({p: store.read(p) for p in paths}).cast(pl.String()))
    return parts


silver_assets = [_silver_asset(t) for t in ehr.SILVER_TABLES]
gold_assets = [research_view_asset(spec) for spec in RESEARCH_VIEWS]


@dg.asset(
    key=CONSENT_STATUS_PATH.split("/"),
    freshness_policy=freshness_policy(CONSENT_STATUS_PATH),
    group_name="research",
    deps=[
        dg.AssetKey(CONSENTS_PATH.split("/")),
        dg.AssetKey(["restricted", "person_crosswalk"]),
        dg.AssetKey(SURROGATES_PATH.split("/")),
    ],
    description="Every person's current consent decision per scope, under the research "
    "pseudonym: one row per person and general scope (research), and one per person and "
    "study with a trial consent record (scope trial:<STUDYID>, the study's own decision). "
    "The catalog server re-reads it on every call, so a revocation takes effect as soon as "
    "this asset is materialised. Never served as a dataset.",
    owners=["team:data-stewards"],
)
def research_consent(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    store = lake.lake()
    inputs = [table_input(store, p) for p in (CONSENTS_PATH, CROSSWALK_PATH)]
    with asset_lineage(
        context,
        store,
        job=job_name(context.asset_key),
        inputs=inputs,
        outputs=[CONSENT_STATUS_PATH],
    ):
        policy = load_policy()
        scopes = tuple(
            sorted({p.consent_scope for p in policy.purposes.values() if p.consent_scope})
        )
        status = consent_status(
            read_consents(store),
            store.read(CROSSWALK_PATH).get_column("person_key"),
            as_of=datetime.now(UTC),
            scopes=scopes,
            pseudonyms=pseudonyms_for(store, lake, "research"),
        )
        outcome = store.merge(
            CONSENT_STATUS_PATH, status, ["person_pseudonym", "scope"], run_id=context.run.run_id
        )
    study = pl.col("study_id").is_not_null()
    return dg.MaterializeResult(
        metadata=write_metadata(
            outcome,
            status.height,
            permitted=int(status.filter(~study).get_column("permitted").sum()),
            study_rows=status.filter(study).height,
            study_withdrawals=status.filter(study, ~pl.col("permitted")).height,
        )
    )
