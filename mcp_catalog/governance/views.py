"""The gold views: what each audience may see, column by column, and how it is computed.

A view is data (its columns, their classes and descriptions) plus one pure function from
silver frames to the view. The catalog is generated from these specs, so the MCP tool
schema, the data card and the table cannot drift apart.
"""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date

import polars as pl

from mcp_catalog.governance.deid import (
    PERSON_PREFIX,
    Pseudonyms,
    birth_year_and_cap,
    shift_dates,
    zip3,
)
from mcp_catalog.manifest import ColumnClass, ColumnType
from quality.valuesets import (
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    ENCOUNTER_STATUS,
    GENDER,
    IMMUNIZATION_STATUS,
    MEDREQ_INTENT,
    MEDREQ_STATUS,
    OBSERVATION_STATUS,
    PROCEDURE_STATUS,
)

OWNER = "biofed data stewards <data-stewards@biofed.example>"
ENCOUNTER_PREFIX = "E"
"""Tag of encounter pseudonyms (an encounter's record_key in the encounters view and the
encounter_key of other views are the same pseudonym, so they join)."""

_DTYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "integer": pl.Int64(),
    "number": pl.Float64(),
    "boolean": pl.Boolean(),
    "date": pl.Date(),
    "datetime": pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True)
class ViewColumn:
    """One column of a gold view."""

    name: str
    type: ColumnType
    description: str
    column_class: ColumnClass
    enum: tuple[str, ...] | None = None
    derived_from: tuple[str, ...] | None = None
    """Source columns this one is computed from; None means the source column of the same
    name. Feeds the column-lineage facet of the view's OpenLineage events."""

    @property
    def sortable(self) -> bool:
        """Quasi-identifiers cannot be sorted on: ``limit=1`` would pick out an outlier."""
        return self.column_class != "quasi_identifier"

    @property
    def dtype(self) -> pl.DataType:
        """The polars dtype the view stores this column as."""
        return _DTYPES[self.type]


@dataclass(frozen=True)
class ViewContext:
    """Everything a view builder needs besides the silver frames."""

    pseudonyms: Pseudonyms
    """How the audience's identifiers become pseudonyms (keyed or surrogate)."""
    shifts: pl.DataFrame
    """``person_key``, ``shift_days`` for every person."""
    consented: pl.Series
    """``person_key`` values of people who consented to this audience's use."""
    reference_date: date
    """The date ages are computed at."""
    record_prefix: str = ""
    """The tag of the view's record pseudonyms (set from the view by :func:`build_view`)."""
    uid_key: bytes = b""
    """The audience's key for remapping DICOM UIDs (``dicom_deid.remap_uid``). Empty for
    audiences without imaging views; the imaging builders refuse to run without it."""
    unblinded_studies: frozenset[str] = frozenset()
    """STUDYIDs of the trials whose treatment arms the views may show (the policy's
    ``Policy.unblinded_studies()``). Arm columns are shown only for these studies; for any
    other study, including one the policy does not list, they are empty (fail closed)."""
    withdrawn_from_study: frozenset[tuple[str, str]] = frozenset()
    """``(person_key, study_id)`` pairs whose latest consent decision for that study does not
    permit (a consent withdrawal recorded in the study's disposition): the trial views leave
    out those people's rows of that study, whatever their general research consent
    (``consent.withdrawn_from_studies``)."""


ViewBuilder = Callable[[dict[str, pl.DataFrame], ViewContext], pl.DataFrame]


@dataclass(frozen=True)
class ViewSpec:
    """One gold view."""

    name: str
    audience: str
    title: str
    description: str
    sources: tuple[str, ...]
    """Silver tables (paths below the lake root) the view reads, in builder order."""
    key: tuple[str, ...]
    columns: tuple[ViewColumn, ...]
    build: ViewBuilder = field(repr=False)
    owner: str = OWNER
    record_prefix: str | None = None
    """Tag of the record pseudonyms of a per-event view (``E``, ``C``, ...); None for views
    without record keys."""
    region: tuple[str, str, str] | None = None
    """``(chrom, start, end)`` columns of a view of genomic positions: the view is stored
    sorted by chromosome and start, in small row groups, and its query tool takes a region."""
    source_of: tuple[tuple[str, str], ...] = ()
    """For views with several sources: ``(source column, source table path)`` pairs naming
    where each source column comes from, for column lineage."""

    @property
    def path(self) -> str:
        """The Delta table path below the lake root."""
        return f"gold/{self.audience}/{self.name}"

    def column_lineage(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """Each view column's inputs as ``(source table path, source column)`` pairs.

        Raises:
            ValueError: when a view with several sources does not say where a column is from.
        """
        origin = dict(self.source_of)
        lineage = {}
        for c in self.columns:
            pairs = []
            for name in c.derived_from or (c.name,):
                if len(self.sources) == 1:
                    pairs.append((self.sources[0], name))
                elif name in origin:
                    pairs.append((origin[name], name))
                else:
                    raise ValueError(f"view {self.name}: no source declared for column {name}")
            lineage[c.name] = tuple(pairs)
        return lineage

    @property
    def storage_order(self) -> list[str]:
        """The row order the view is stored in: by position for genomic views (so region
        reads prune row groups), else by key."""
        if self.region is None:
            return list(self.key)
        chrom, start, _ = self.region
        return [chrom, start, *(k for k in self.key if k not in (chrom, start))]

    def conform(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Select and cast the built frame to exactly the declared columns, in order.

        Raises:
            ValueError: when the builder did not produce a declared column.
        """
        missing = [c.name for c in self.columns if c.name not in frame.columns]
        if missing:
            raise ValueError(f"view {self.audience}/{self.name} lacks columns {missing}")
        return frame.select(pl.col(c.name).cast(c.dtype) for c in self.columns)


def _pseudonym(name: str = "person_pseudonym") -> ViewColumn:
    return ViewColumn(
        name,
        "string",
        "Pseudonym of the person, stable within this audience only.",
        "pseudonym",
        derived_from=("person_key",),
    )


def _record(name: str, what: str, source: str = "id") -> ViewColumn:
    return ViewColumn(
        name,
        "string",
        f"Pseudonym of the {what}, stable within this audience only.",
        "pseudonym",
        derived_from=(source,),
    )


def _coded(prefix: str, what: str) -> tuple[ViewColumn, ...]:
    return (
        ViewColumn(f"{prefix}system", "string", f"Code system URI of the {what}.", "clinical"),
        ViewColumn(f"{prefix}code", "string", f"Code of the {what}.", "clinical"),
        ViewColumn(f"{prefix}display", "string", f"Display text of the {what} code.", "clinical"),
    )


def _shifted(
    name: str, what: str, kind: ColumnType = "datetime", derived_from: tuple[str, ...] | None = None
) -> ViewColumn:
    return ViewColumn(
        name,
        kind,
        f"{what}, shifted by the person's secret date offset (intervals within a person are kept).",
        "sensitive",
        derived_from=derived_from,
    )


def _consented(frame: pl.DataFrame, ctx: ViewContext) -> pl.DataFrame:
    return frame.filter(pl.col("person_key").is_in(ctx.consented.implode()))


def _events(dates: tuple[str, ...]) -> ViewBuilder:
    """A builder for per-person event tables: consent filter, date shift, pseudonyms."""

    def build(silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
        (frame,) = silver.values()
        frame = shift_dates(_consented(frame, ctx), dates, ctx.shifts)
        frame = ctx.pseudonyms.apply(frame, "id", prefix=ctx.record_prefix, alias="record_key")
        if "encounter_id" in frame.columns:
            frame = ctx.pseudonyms.apply(
                frame, "encounter_id", prefix=ENCOUNTER_PREFIX, alias="encounter_key"
            )
        return ctx.pseudonyms.apply(
            frame, "person_key", prefix=PERSON_PREFIX, alias="person_pseudonym"
        )

    return build


def _build_patients(silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
    (frame,) = silver.values()
    # FHIR leaves deceased[x] out for the living: a research view answers "is a death
    # recorded", so absent means false (a death time alone also means true).
    frame = _consented(frame, ctx).with_columns(
        pl.col("deceased_datetime").dt.date().alias("death_date"),
        (pl.col("deceased").fill_null(False) | pl.col("deceased_datetime").is_not_null()).alias(
            "deceased"
        ),
    )
    frame = shift_dates(frame, ("death_date",), ctx.shifts)
    frame = birth_year_and_cap(frame, reference=ctx.reference_date)
    frame = zip3(frame, "postal_code")
    return ctx.pseudonyms.apply(frame, "person_key", prefix=PERSON_PREFIX, alias="person_pseudonym")


_ENC_KEY = _record("encounter_key", "encounter during which this was recorded", "encounter_id")

RESEARCH_VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec(
        name="patients",
        audience="research",
        title="Patients (de-identified)",
        description="One row per consented person: demographics generalised for research "
        "(birth year, 3-digit ZIP, no names, addresses or identifiers).",
        sources=("silver/ehr/patients",),
        key=("person_pseudonym",),
        columns=(
            _pseudonym(),
            ViewColumn(
                "birth_year",
                "integer",
                "Year of birth; empty for people aged 90 or more.",
                "quasi_identifier",
                derived_from=("birth_date",),
            ),
            ViewColumn(
                "age_90_plus",
                "boolean",
                "True when the person is aged 90 or more.",
                "quasi_identifier",
                derived_from=("birth_date",),
            ),
            ViewColumn("gender", "string", "Administrative gender.", "quasi_identifier", GENDER),
            ViewColumn("race", "string", "US Core race (OMB category).", "quasi_identifier"),
            ViewColumn(
                "ethnicity", "string", "US Core ethnicity (OMB category).", "quasi_identifier"
            ),
            ViewColumn("state", "string", "State of residence.", "quasi_identifier"),
            ViewColumn(
                "zip3",
                "string",
                "First three digits of the ZIP code; 000 for sparsely populated areas.",
                "quasi_identifier",
                derived_from=("postal_code",),
            ),
            ViewColumn(
                "marital_status",
                "string",
                "Marital status code (v3 MaritalStatus).",
                "quasi_identifier",
            ),
            ViewColumn("language", "string", "Preferred language code.", "quasi_identifier"),
            ViewColumn(
                "deceased",
                "boolean",
                "True when a death is recorded for the person.",
                "clinical",
                derived_from=("deceased", "deceased_datetime"),
            ),
            _shifted("death_date", "Date of death", "date", derived_from=("deceased_datetime",)),
        ),
        build=_build_patients,
    ),
    ViewSpec(
        name="encounters",
        audience="research",
        title="Encounters (de-identified)",
        description="Visits and admissions of consented people, with shifted dates.",
        sources=("silver/ehr/encounters",),
        key=("record_key",),
        columns=(
            _record("record_key", "encounter"),
            _pseudonym(),
            ViewColumn("status", "string", "Encounter status.", "administrative", ENCOUNTER_STATUS),
            ViewColumn(
                "class_code", "string", "Encounter class (AMB, EMER, IMP, ...).", "clinical"
            ),
            *_coded("type_", "encounter type (SNOMED CT)"),
            _shifted("period_start", "Start of the encounter"),
            _shifted("period_end", "End of the encounter"),
            *_coded("reason_", "reason for the encounter"),
        ),
        record_prefix="E",
        build=_events(("period_start", "period_end")),
    ),
    ViewSpec(
        name="conditions",
        audience="research",
        title="Conditions (de-identified)",
        description="Diagnoses and problems of consented people (SNOMED CT), with shifted dates.",
        sources=("silver/ehr/conditions",),
        key=("record_key",),
        columns=(
            _record("record_key", "condition"),
            _pseudonym(),
            _ENC_KEY,
            ViewColumn(
                "clinical_status", "string", "Clinical status.", "clinical", CONDITION_CLINICAL
            ),
            ViewColumn(
                "verification_status",
                "string",
                "Verification status.",
                "clinical",
                CONDITION_VERIFICATION,
            ),
            ViewColumn("category", "string", "Condition category code.", "clinical"),
            *_coded("", "condition"),
            _shifted("onset_datetime", "Onset of the condition"),
            _shifted("abatement_datetime", "When the condition abated"),
            _shifted("recorded_date", "When the condition was recorded"),
        ),
        record_prefix="C",
        build=_events(("onset_datetime", "abatement_datetime", "recorded_date")),
    ),
    ViewSpec(
        name="observations",
        audience="research",
        title="Observations (de-identified)",
        description="Vital signs, laboratory results and survey answers of consented people "
        "(LOINC, UCUM units), with shifted dates. Free-text results are withheld.",
        sources=("silver/ehr/observations",),
        key=("record_key",),
        columns=(
            _record("record_key", "observation"),
            _pseudonym(),
            _ENC_KEY,
            ViewColumn("status", "string", "Result status.", "clinical", OBSERVATION_STATUS),
            ViewColumn("category", "string", "Observation category code.", "clinical"),
            *_coded("", "observation (LOINC)"),
            _shifted("effective_datetime", "Clinically relevant time"),
            ViewColumn("value_quantity", "number", "Numeric result.", "clinical"),
            ViewColumn("value_unit", "string", "UCUM unit of the numeric result.", "clinical"),
            *_coded("value_", "coded result"),
            ViewColumn(
                "interpretation", "string", "Interpretation code (H, L, N, ...).", "clinical"
            ),
        ),
        record_prefix="O",
        build=_events(("effective_datetime",)),
    ),
    ViewSpec(
        name="medication_requests",
        audience="research",
        title="Medication requests (de-identified)",
        description="Prescriptions of consented people (RxNorm), with shifted dates. Free-text "
        "dosage instructions are withheld.",
        sources=("silver/ehr/medication_requests",),
        key=("record_key",),
        columns=(
            _record("record_key", "medication request"),
            _pseudonym(),
            _ENC_KEY,
            ViewColumn("status", "string", "Request status.", "clinical", MEDREQ_STATUS),
            ViewColumn("intent", "string", "Request intent.", "clinical", MEDREQ_INTENT),
            *_coded("medication_", "medication (RxNorm)"),
            _shifted("authored_on", "When the prescription was written"),
        ),
        record_prefix="M",
        build=_events(("authored_on",)),
    ),
    ViewSpec(
        name="procedures",
        audience="research",
        title="Procedures (de-identified)",
        description="Procedures of consented people (SNOMED CT), with shifted dates.",
        sources=("silver/ehr/procedures",),
        key=("record_key",),
        columns=(
            _record("record_key", "procedure"),
            _pseudonym(),
            _ENC_KEY,
            ViewColumn("status", "string", "Procedure status.", "clinical", PROCEDURE_STATUS),
            *_coded("", "procedure (SNOMED CT)"),
            _shifted("performed_start", "When the procedure started"),
            _shifted("performed_end", "When the procedure ended"),
        ),
        record_prefix="R",
        build=_events(("performed_start", "performed_end")),
    ),
    ViewSpec(
        name="immunizations",
        audience="research",
        title="Immunizations (de-identified)",
        description="Vaccinations of consented people (CVX), with shifted dates.",
        sources=("silver/ehr/immunizations",),
        key=("record_key",),
        columns=(
            _record("record_key", "immunization"),
            _pseudonym(),
            _ENC_KEY,
            ViewColumn("status", "string", "Immunization status.", "clinical", IMMUNIZATION_STATUS),
            *_coded("vaccine_", "vaccine (CVX)"),
            _shifted("occurrence_datetime", "When the vaccine was given"),
        ),
        record_prefix="I",
        build=_events(("occurrence_datetime",)),
    ),
)
"""The research audience's views of the EHR silo."""


def build_view(spec: ViewSpec, silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
    """Compute one gold view from its silver inputs.

    Args:
        spec: the view.
        silver: the source frames keyed by ``spec.sources`` paths.
        ctx: keys, shifts, consent and the reference date.

    Returns:
        The view with exactly its declared columns, in its storage order.
    """
    ctx = replace(ctx, record_prefix=spec.record_prefix or "")
    built = spec.conform(spec.build({s: silver[s] for s in spec.sources}, ctx))
    return built.sort(spec.storage_order)


def surrogate_identifiers(
    silver: dict[str, pl.DataFrame], people: pl.Series, specs: tuple[ViewSpec, ...]
) -> pl.DataFrame:
    """Every ``(prefix, identifier)`` pair the views of ``specs`` pseudonymise.

    Args:
        silver: the views' source frames keyed by path.
        people: every ``person_key``.
        specs: the views.

    Returns:
        ``prefix``, ``identifier`` (duplicates possible), for :func:`new_surrogates`.
    """
    parts = [pl.DataFrame({"prefix": PERSON_PREFIX, "identifier": people.cast(pl.String())})]
    for spec in specs:
        if spec.record_prefix is None:
            continue
        (source,) = spec.sources
        frame = silver[source]
        parts.append(
            frame.select(
                pl.lit(spec.record_prefix).alias("prefix"), pl.col("id").alias("identifier")
            )
        )
        if "encounter_id" in frame.columns:
            parts.append(
                frame.select(
                    pl.lit(ENCOUNTER_PREFIX).alias("prefix"),
                    pl.col("encounter_id").alias("identifier"),
                )
            )
    return pl.concat([p.cast(pl.String()) for p in parts]).drop_nulls()


@dataclass(frozen=True)
class IdentifiedView:
    """An identified dataset served straight from a silver table, only under break-glass.

    Nothing is materialised for it: the catalog describes the silver table's columns listed
    here (types and descriptions come from the source schema, classes from the policy), and
    the server filters every read to the one patient a grant names.
    """

    name: str
    table: str
    """The silver table path below the lake root."""
    title: str
    description: str
    columns: tuple[str, ...]
    key: tuple[str, ...] = ("id",)
    audience: str = "clinical"
    owner: str = OWNER


IDENTIFIED_VIEWS: tuple[IdentifiedView, ...] = (
    IdentifiedView(
        "patient",
        "silver/ehr/patients",
        "Patient (identified)",
        "The identified demographic record of one patient.",
        (
            "id",
            "mrn",
            "family_name",
            "given_name",
            "gender",
            "birth_date",
            "deceased",
            "deceased_datetime",
            "address_line",
            "city",
            "state",
            "postal_code",
            "race",
            "ethnicity",
            "marital_status",
            "language",
        ),
    ),
    IdentifiedView(
        "patient_encounters",
        "silver/ehr/encounters",
        "Patient encounters (identified)",
        "Visits and admissions of one patient, with real dates.",
        (
            "id",
            "patient_id",
            "status",
            "class_code",
            "type_system",
            "type_code",
            "type_display",
            "period_start",
            "period_end",
            "reason_system",
            "reason_code",
            "reason_display",
        ),
    ),
    IdentifiedView(
        "patient_conditions",
        "silver/ehr/conditions",
        "Patient conditions (identified)",
        "Diagnoses and problems of one patient, with real dates.",
        (
            "id",
            "patient_id",
            "encounter_id",
            "clinical_status",
            "verification_status",
            "category",
            "system",
            "code",
            "display",
            "onset_datetime",
            "abatement_datetime",
            "recorded_date",
        ),
    ),
    IdentifiedView(
        "patient_observations",
        "silver/ehr/observations",
        "Patient observations (identified)",
        "Vital signs, laboratory results and survey answers of one patient, with free-text "
        "results.",
        (
            "id",
            "patient_id",
            "encounter_id",
            "status",
            "category",
            "system",
            "code",
            "display",
            "effective_datetime",
            "value_quantity",
            "value_unit",
            "value_system",
            "value_code",
            "value_display",
            "value_string",
            "interpretation",
        ),
    ),
    IdentifiedView(
        "patient_medications",
        "silver/ehr/medication_requests",
        "Patient medication requests (identified)",
        "Prescriptions of one patient, with dosage instructions.",
        (
            "id",
            "patient_id",
            "encounter_id",
            "status",
            "intent",
            "medication_system",
            "medication_code",
            "medication_display",
            "authored_on",
            "dosage_text",
        ),
    ),
)
"""The clinical audience's identified records, released only under break-glass."""
