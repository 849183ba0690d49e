"""Cohorts across the person-level views of one audience, generated from the catalog.

A cohort is the set of people in the audience's person register (the ``patients`` view) who
meet every criterion given. Each criterion kind reads one view, joined on the person
pseudonym; a kind is offered to a role only when its view is in the catalog, visible to the
role (rows or aggregates) and carries the columns the kind needs:

========== ================= ==========================================================
kind       view              a person qualifies when
========== ================= ==========================================================
conditions conditions        any recorded condition has one of the codes (and the code
                             system, when given); refuted or entered-in-error records do
                             not count
labs       lab_results       any result of the LOINC code has a value in [min, max]
imaging    imaging_studies   any study of the (primary) modality, body part and
                             study-date window
variants   genotypes         a genotype at that position and allele with at least one
                             alternate copy (a carrier)
trials     trial_subjects    they are a subject of the study (and of the arm, only for a
                             study whose arms are unblinded)
age        patients          reference year - birth year is within [min, max]
sex        patients          gender equals the value
========== ================= ==========================================================

Age: the patients view keeps the year of birth only, and none at all for people aged 90 or
more at its materialisation (``age_90_plus``). Age is therefore the reference year (the year
the patients view was materialised, its ``as_of``) minus the year of birth, capped at 90, and
everyone with ``age_90_plus`` counts as 90: a bound of 90 means "90 or older". It can exceed
the age in completed years by one (the birthday is not kept).

Imaging dates are the study dates of the view, which are shifted per person in research
views: intervals within a person are kept, but a window over calendar dates is approximate.

This module builds the argument and result models and compiles validated criteria to polars
expressions; reading the views (at their pinned versions, with row thresholds and consent
applied) is the server's, which hands :func:`evaluate` a scan per view.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from mcp_catalog.cohorts_store import NAME_PATTERN
from mcp_catalog.manifest import PERSON_COLUMN, CatalogDataset
from mcp_catalog.query import (
    CONTIG_PATTERN,
    EARLIEST_DATE,
    LATEST_DATE,
    MAX_CONTIG_LENGTH,
    compact_schema,
    strict_parse,
)

REGISTER = "patients"
"""The person register of an audience: a cohort's people are drawn from it."""
AGE_CAP = 90
"""Ages of 90 and over are one group in the patients view."""
MAX_CODES = 100
"""The most codes one conditions criterion may list."""
MAX_CODE_LENGTH = 64
MAX_SYSTEM_LENGTH = 256
MAX_ALLELE_LENGTH = 1000
MAX_LABEL_LENGTH = 200
EXCLUDED_VERIFICATION = ("refuted", "entered-in-error")
"""Verification statuses of a condition record that do not make a person qualify."""
UNBLINDED = "unblinded"
"""The ``arm_status`` of a subject whose treatment arm the view shows."""

OUTPUTS = ("count", "pseudonyms")
ARGUMENTS = ("criteria", "output", "save_as", "background")

_STRICT = ConfigDict(extra="forbid", strict=True)
_CODE = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
_SYSTEM = r"^[A-Za-z][A-Za-z0-9+.-]*:[!-~]+$"
_LOINC = r"^[0-9]{1,8}-[0-9]$"
_ALLELE = r"^(?:[ACGTNacgtn]+|\*|<[A-Za-z0-9:_.-]{1,62}>)$"
_STUDY = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
_LABEL = r"^[^\x00-\x1f\x7f]+$"
_BODY_PART = r"^[A-Z0-9_ ]{1,64}$"


class CohortRefusal(Exception):
    """A cohort that cannot be answered as asked, found while reading the views; ``reason``
    goes to the audit record, ``message`` (a fixed sentence) to the caller."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


BLINDED_ARM_MESSAGE = (
    "the treatment arm of a study whose arms are blinded cannot be a criterion; leave out arm "
    "to select the study's subjects"
)


@dataclass(frozen=True)
class CriterionKind:
    """One kind of criterion and the view it reads."""

    name: str
    view: str
    columns: dict[str, tuple[str, ...]]
    """Column name -> the catalog types it may have; every one must be present."""
    optional: tuple[str, ...] = ()
    """Columns used when present (``verification_status``)."""
    repeated: bool = True
    """A list of criteria (AND); False for ``age`` and ``sex`` (one value each)."""


KINDS: tuple[CriterionKind, ...] = (
    CriterionKind(
        "conditions",
        "conditions",
        {"system": ("string",), "code": ("string",)},
        optional=("verification_status",),
    ),
    CriterionKind("labs", "lab_results", {"loinc": ("string",), "value": ("number", "integer")}),
    CriterionKind(
        "imaging",
        "imaging_studies",
        {"primary_modality": ("string",), "body_part": ("string",), "study_date": ("date",)},
    ),
    CriterionKind(
        "variants",
        "genotypes",
        {
            "chrom": ("string",),
            "pos": ("integer",),
            "ref": ("string",),
            "alt": ("string",),
            "alt_allele_copies": ("integer",),
        },
    ),
    CriterionKind(
        "trials",
        "trial_subjects",
        {"study_id": ("string",), "arm": ("string",), "arm_status": ("string",)},
    ),
    CriterionKind(
        "age", REGISTER, {"birth_year": ("integer",), "age_90_plus": ("boolean",)}, repeated=False
    ),
    CriterionKind("sex", REGISTER, {"gender": ("string",)}, repeated=False),
)
"""Every criterion kind, in argument order."""
KIND_VIEWS: dict[str, str] = {kind.name: kind.view for kind in KINDS}
"""Criterion kind -> the view it reads."""
REGISTER_COLUMNS = ("birth_year", "age_90_plus", "gender")
"""What the person register must carry for the cohort tool to be offered."""


@dataclass(frozen=True)
class CohortStep:
    """One criterion compiled against its view (or the register, first of all steps)."""

    kind: str
    view: str
    conditions: tuple[pl.Expr, ...]
    columns: tuple[str, ...]
    """The view's columns the step reads (for the audit record and disclosure checks)."""
    guard: pl.Expr | None = field(default=None)
    """Rows that must not exist for the step to run (a study whose arms are blinded)."""


def _distinct(values: list[Any]) -> list[Any]:
    keys = [json.dumps(v, sort_keys=True, default=str) for v in values]
    if len(set(keys)) != len(keys):
        raise PydanticCustomError("distinct", "an entry is listed twice")
    return values


def _ordered(low: str, high: str) -> Callable[[BaseModel], BaseModel]:
    def check(model: BaseModel) -> BaseModel:
        lower, upper = getattr(model, low), getattr(model, high)
        if lower is not None and upper is not None and lower > upper:
            raise PydanticCustomError("bounds_order", "the lower bound is above the upper one")
        return model

    return check


def _some(*names: str) -> Callable[[BaseModel], BaseModel]:
    def check(model: BaseModel) -> BaseModel:
        if all(getattr(model, name) is None for name in names):
            raise PydanticCustomError("empty_criterion", "the criterion sets nothing")
        return model

    return check


def _text(pattern: str, max_length: int) -> Any:
    return Annotated[str, Field(min_length=1, max_length=max_length, pattern=pattern)]


def _enum_or_text(column: Any, pattern: str, max_length: int) -> Any:
    if column is not None and column.enum:
        return Literal[tuple(sorted(column.enum))]
    return _text(pattern, max_length)


def _criterion_model(kind: CriterionKind, view: CatalogDataset) -> tuple[Any, str]:
    """The model of one criterion of ``kind`` over ``view``, and its shape sentence."""
    name = f"cohort_{kind.name}_criterion"
    match kind.name:
        case "conditions":
            model = create_model(
                name,
                __config__=_STRICT,
                __doc__="A person qualifies when any recorded condition has one of the codes.",
                codes=(
                    Annotated[list[_text(_CODE, MAX_CODE_LENGTH)], AfterValidator(_distinct)],
                    Field(
                        min_length=1,
                        max_length=MAX_CODES,
                        description=f"Codes (1 to {MAX_CODES}, distinct); any one qualifies.",
                    ),
                ),
                system=(
                    _text(_SYSTEM, MAX_SYSTEM_LENGTH) | None,
                    Field(
                        None, description="Code system URI the codes belong to; any when omitted."
                    ),
                ),
            )
            shape = (
                f"each conditions entry is {{codes: 1 to {MAX_CODES} distinct codes, system: "
                "an optional code system URI}"
            )
        case "labs":
            bound = Annotated[float, Field(allow_inf_nan=False)]
            model = create_model(
                name,
                __config__=_STRICT,
                __doc__="A person qualifies with any result of the LOINC code within the range.",
                __validators__={"ordered": model_validator(mode="after")(_ordered("min", "max"))},
                loinc=(_text(_LOINC, 10), Field(description="LOINC code, such as 4548-4.")),
                min=(
                    bound | None,
                    Field(None, description="Lowest value (inclusive); open when null."),
                ),
                max=(
                    bound | None,
                    Field(None, description="Highest value (inclusive); open when null."),
                ),
            )
            shape = (
                "each labs entry is {loinc: a LOINC code such as 4548-4, min and max: finite "
                "numbers or null, min not above max}"
            )
        case "imaging":
            day = Annotated[date, Field(ge=EARLIEST_DATE, le=LATEST_DATE)]
            modality = _enum_or_text(view.column("primary_modality"), _BODY_PART, 16)
            model = create_model(
                name,
                __config__=_STRICT,
                __doc__="A person qualifies with any imaging study matching every field given.",
                __validators__={
                    "ordered": model_validator(mode="after")(_ordered("from_", "to")),
                    "some": model_validator(mode="after")(
                        _some("modality", "body_part", "from_", "to")
                    ),
                },
                modality=(
                    modality | None,
                    Field(None, description="The study's primary DICOM modality."),
                ),
                body_part=(
                    _text(_BODY_PART, 64) | None,
                    Field(None, description="DICOM body part examined, such as ABDOMEN."),
                ),
                from_=(
                    day | None,
                    Field(None, alias="from", description="Earliest (shifted) study date."),
                ),
                to=(day | None, Field(None, description="Latest (shifted) study date.")),
            )
            shape = (
                "each imaging entry is {modality, body_part, from, to}, at least one given; "
                f"dates written YYYY-MM-DD from {EARLIEST_DATE} to {LATEST_DATE}, from not "
                "after to"
            )
        case "variants":
            model = create_model(
                name,
                __config__=_STRICT,
                __doc__="A person qualifies when they carry the alternate allele.",
                chrom=(
                    Annotated[str, Field(max_length=MAX_CONTIG_LENGTH, pattern=CONTIG_PATTERN)],
                    Field(description="Contig name exactly as in the view, such as chr10."),
                ),
                pos=(
                    Annotated[int, Field(ge=1, le=2**31 - 1)],
                    Field(description="1-based position of the first reference base."),
                ),
                ref=(_text(_ALLELE, MAX_ALLELE_LENGTH), Field(description="Reference allele.")),
                alt=(_text(_ALLELE, MAX_ALLELE_LENGTH), Field(description="Alternate allele.")),
            )
            shape = (
                "each variants entry is {chrom: a contig name, pos: a 1-based position, ref "
                "and alt: alleles of A, C, G, T and N}"
            )
        case "trials":
            model = create_model(
                name,
                __config__=_STRICT,
                __doc__="A person qualifies as a subject of the study (and arm, if given).",
                study_id=(_text(_STUDY, 40), Field(description="STUDYID of the trial.")),
                arm=(
                    _text(_LABEL, MAX_LABEL_LENGTH) | None,
                    Field(
                        None, description="Planned arm; only for studies whose arms are unblinded."
                    ),
                ),
            )
            shape = "each trials entry is {study_id: a STUDYID, arm: an optional arm name}"
        case "age":
            years = Annotated[int, Field(ge=0, le=AGE_CAP)]
            model = create_model(
                name,
                __config__=_STRICT,
                __doc__=(
                    "Age in whole years: the reference year minus the year of birth, with "
                    f"{AGE_CAP} standing for {AGE_CAP} or older."
                ),
                __validators__={
                    "ordered": model_validator(mode="after")(_ordered("min", "max")),
                    "some": model_validator(mode="after")(_some("min", "max")),
                },
                min=(years | None, Field(None, description="Youngest age (inclusive).")),
                max=(years | None, Field(None, description="Oldest age (inclusive).")),
            )
            shape = (
                f"age is {{min, max}}: whole years from 0 to {AGE_CAP} ({AGE_CAP} stands for "
                f"{AGE_CAP} or older), at least one given, min not above max"
            )
        case "sex":
            column = view.column("gender")
            model = _enum_or_text(column, _LABEL, 32)
            values = ", ".join(sorted(column.enum)) if column and column.enum else None
            shape = f"sex must be one of: {values}" if values else "sex must be a gender value"
        case _:  # pragma: no cover - KINDS is closed
            raise AssertionError(kind.name)
    return model, shape


def _column_problem(kind: CriterionKind, view: CatalogDataset) -> str | None:
    """Why ``view`` cannot serve ``kind``: None when it can, ``""`` when columns are missing
    (the kind is simply not offered), else a sentence (a column of the wrong type)."""
    if view.column(PERSON_COLUMN) is None:
        return ""
    for name, types in kind.columns.items():
        column = view.column(name)
        if column is None:
            return ""
        if column.type not in types:
            return (
                f"column {name!r} of {view.name} must be of type {' or '.join(types)} for the "
                f"{kind.name} criteria of the cohort tool"
            )
    return None


@dataclass(frozen=True)
class CohortSpec:
    """The cohort tool of one role: its models, error sentences and compiler."""

    audience: str
    kinds: tuple[CriterionKind, ...]
    """The criterion kinds offered, in argument order."""
    views: Mapping[str, CatalogDataset]
    """The views the offered kinds read, by name (the register among them)."""
    max_criteria: int
    arguments_model: type[BaseModel]
    result_model: type[BaseModel]
    job_model: type[BaseModel]
    shapes: Mapping[str, str]

    @classmethod
    def for_views(
        cls, views: Mapping[str, CatalogDataset], *, audience: str, max_criteria: int
    ) -> "CohortSpec | None":
        """Generate the cohort models from the views a role can use.

        Args:
            views: the role's visible views of ``audience``, by name.
            audience: the cohort audience.
            max_criteria: the most criteria per cohort (each list's length cap too).

        Returns:
            The spec, or None when the person register is missing or lacks its columns.

        Raises:
            ValueError: when a view has a criterion's columns with the wrong types.
        """
        register = views.get(REGISTER)
        if register is None or register.column(PERSON_COLUMN) is None:
            return None
        if any(register.column(c) is None for c in REGISTER_COLUMNS):
            return None
        offered: list[CriterionKind] = []
        for kind in KINDS:
            view = views.get(kind.view)
            if view is None:
                continue
            problem = _column_problem(kind, view)
            if problem:
                raise ValueError(problem)
            if problem is None:
                offered.append(kind)
        used = {kind.view: views[kind.view] for kind in offered}
        fields: dict[str, Any] = {}
        shapes: dict[str, str] = {}
        for kind in offered:
            model, shape = _criterion_model(kind, used[kind.view])
            shapes[kind.name] = shape
            if kind.repeated:
                fields[kind.name] = (
                    list[model] | None,
                    Field(
                        None,
                        min_length=1,
                        max_length=max_criteria,
                        description=f"{model.__doc__} Every entry must hold.",
                    ),
                )
            else:
                fields[kind.name] = (model | None, Field(None, description=_single(kind, model)))
        names = tuple(kind.name for kind in offered)
        criteria = create_model(
            "cohort_criteria",
            __config__=ConfigDict(**_STRICT, json_schema_extra={"minProperties": 1}),
            __doc__="Criteria a person must all meet; at least one.",
            __validators__={"some": model_validator(mode="after")(_some(*names))},
            **fields,
        )
        arguments = create_model(
            "find_cohort_arguments",
            __config__=_STRICT,
            criteria=(criteria, Field(description="The cohort's criteria (all must hold).")),
            output=(
                Literal[OUTPUTS],
                Field(
                    "count",
                    description="count: the number of people (suppressed when small); "
                    "pseudonyms: also the members' research pseudonyms.",
                ),
            ),
            save_as=(
                Annotated[str, Field(pattern=f"^{NAME_PATTERN}$")] | None,
                Field(
                    None,
                    description="A name (lower-case letters, digits and dashes, at most 64) "
                    "to save the cohort under, as that name's next version.",
                ),
            ),
            background=(
                bool,
                Field(
                    False,
                    description="Whether to run as a background job whose status and result "
                    "are a resource.",
                ),
            ),
        )
        return cls(
            audience,
            tuple(offered),
            used,
            max_criteria,
            arguments,
            _result_model(),
            _job_model(),
            shapes,
        )

    @property
    def reference_year(self) -> int:
        """The year ages are computed at: the person register's materialisation year."""
        return self.views[REGISTER].last_materialized.year

    # -- schemas, parsing -------------------------------------------------------------------

    def output_model(self) -> Any:
        """The tool's result type: a cohort answer or a background job handle."""
        return self.result_model | self.job_model

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments, self-contained."""
        return compact_schema(self.arguments_model.model_json_schema(by_alias=True))

    def output_schema(self) -> dict[str, Any]:
        """The JSON schema of the result (an answer or a job handle), self-contained."""
        answer = compact_schema(self.result_model.model_json_schema(by_alias=True))
        job = compact_schema(self.job_model.model_json_schema(by_alias=True))
        return {"type": "object", "anyOf": [answer, job]}

    def parse(self, arguments: Mapping[str, Any]) -> BaseModel:
        """Validate raw arguments strictly.

        Raises:
            QueryError: with corrective sentences, never the values.
        """
        return strict_parse(self.arguments_model, arguments, self._explain)

    def _explain(self, error: ErrorDetails) -> str:
        loc, kind = error["loc"], error["type"]
        names = ", ".join(k.name for k in self.kinds)
        if not loc:
            return "arguments must be a JSON object."
        top = loc[0]
        if len(loc) == 1 and kind == "extra_forbidden":
            return f"unknown argument; allowed arguments: {', '.join(ARGUMENTS)}."
        if top == "criteria":
            if len(loc) == 1:
                if kind == "missing":
                    return f"criteria is required: an object with any of: {names}."
                return f"criteria must be an object with at least one of: {names}."
            criterion = loc[1]
            if len(loc) == 2 and kind == "extra_forbidden":
                return f"unknown criterion kind; criterion kinds for this role: {names}."
            shape = self.shapes.get(str(criterion))
            if shape is None:  # pragma: no cover - every other location names a kind
                return f"criteria must be an object with at least one of: {names}."
            if len(loc) == 2 and kind not in ("empty_criterion", "bounds_order"):
                if str(criterion) in ("age", "sex"):
                    return f"{shape}."
                return f"{criterion} must be a list of 1 to {self.max_criteria} entries; {shape}."
            return f"{shape}."
        if top == "output":
            return "output must be count or pseudonyms."
        if top == "save_as":
            return (
                "save_as must be a cohort name: 1 to 64 lower-case letters, digits and dashes, "
                "not starting with a dash."
            )
        if top == "background":
            return "background must be true or false."
        return "arguments do not match the input schema of this tool."  # pragma: no cover

    # -- compiling ---------------------------------------------------------------------------

    def criteria_count(self, arguments: BaseModel) -> int:
        """How many criteria ``arguments`` hold (each list entry, age and sex count one)."""
        criteria = arguments.criteria  # type: ignore[attr-defined]
        count = 0
        for kind in self.kinds:
            value = getattr(criteria, kind.name)
            if value is not None:
                count += len(value) if kind.repeated else 1
        return count

    def definition(self, arguments: BaseModel) -> dict[str, Any]:
        """The criteria as canonical JSON data (what a saved cohort records)."""
        criteria = arguments.criteria  # type: ignore[attr-defined]
        return criteria.model_dump(mode="json", by_alias=True, exclude_none=True)

    def steps(self, arguments: BaseModel) -> list[CohortStep]:
        """The register, then one step per criterion, in argument order.

        Args:
            arguments: validated arguments.

        Returns:
            The steps; the first reads the person register without conditions.
        """
        criteria = arguments.criteria  # type: ignore[attr-defined]
        steps = [CohortStep("register", REGISTER, (), (PERSON_COLUMN,))]
        for kind in self.kinds:
            value = getattr(criteria, kind.name)
            if value is None:
                continue
            view = self.views[kind.view]
            for entry in value if kind.repeated else [value]:
                steps.append(self._step(kind, view, entry))
        return steps

    def _step(self, kind: CriterionKind, view: CatalogDataset, entry: Any) -> CohortStep:
        present = [c for c in kind.optional if view.column(c) is not None]
        columns = (PERSON_COLUMN, *kind.columns, *present)
        conditions: list[pl.Expr] = []
        guard = None
        match kind.name:
            case "conditions":
                conditions.append(pl.col("code").is_in(list(entry.codes)))
                if entry.system is not None:
                    conditions.append(pl.col("system") == pl.lit(entry.system, pl.String))
                if "verification_status" in present:
                    status = pl.col("verification_status")
                    conditions.append(status.is_null() | ~status.is_in(EXCLUDED_VERIFICATION))
            case "labs":
                conditions.append(pl.col("loinc") == pl.lit(entry.loinc, pl.String))
                if entry.min is not None:
                    conditions.append(pl.col("value") >= entry.min)
                if entry.max is not None:
                    conditions.append(pl.col("value") <= entry.max)
            case "imaging":
                if entry.modality is not None:
                    modality = pl.lit(entry.modality, pl.String)
                    conditions.append(pl.col("primary_modality") == modality)
                if entry.body_part is not None:
                    conditions.append(pl.col("body_part") == pl.lit(entry.body_part, pl.String))
                if entry.from_ is not None:
                    conditions.append(pl.col("study_date") >= entry.from_)
                if entry.to is not None:
                    conditions.append(pl.col("study_date") <= entry.to)
            case "variants":
                conditions += [
                    pl.col("chrom") == pl.lit(entry.chrom, pl.String),
                    pl.col("pos") == entry.pos,
                    pl.col("ref") == pl.lit(entry.ref, pl.String),
                    pl.col("alt") == pl.lit(entry.alt, pl.String),
                    pl.col("alt_allele_copies") >= 1,
                ]
            case "trials":
                study = pl.col("study_id") == pl.lit(entry.study_id, pl.String)
                conditions.append(study)
                if entry.arm is not None:
                    conditions.append(pl.col("arm") == pl.lit(entry.arm, pl.String))
                    # Fail closed: any subject of the study whose arm is not shown.
                    guard = study & (pl.col("arm_status").fill_null("") != UNBLINDED)
            case "age":
                age = (
                    pl.when(pl.col("age_90_plus").fill_null(False))
                    .then(pl.lit(AGE_CAP))
                    .otherwise(
                        (pl.lit(self.reference_year) - pl.col("birth_year")).clip(
                            upper_bound=AGE_CAP
                        )
                    )
                )
                if entry.min is not None:
                    conditions.append(age >= entry.min)
                if entry.max is not None:
                    conditions.append(age <= entry.max)
                conditions.append(age.is_not_null())
            case "sex":
                conditions.append(pl.col("gender") == pl.lit(entry, pl.String))
        return CohortStep(kind.name, view.name, tuple(conditions), columns, guard)

    def arms_asked(self, arguments: BaseModel) -> list[str]:
        """The studies of trials criteria that name an arm."""
        criteria = arguments.criteria  # type: ignore[attr-defined]
        trials = getattr(criteria, "trials", None) or []
        return [entry.study_id for entry in trials if entry.arm is not None]


def _single(kind: CriterionKind, model: Any) -> str:
    if kind.name == "sex":
        return "Administrative gender, as the gender column of the patients view records it."
    return str(model.__doc__)


def views_used(steps: Sequence[CohortStep]) -> list[str]:
    """The views the steps read, the register first, each once."""
    return list(dict.fromkeys(step.view for step in steps))


def columns_used(steps: Sequence[CohortStep]) -> dict[str, list[str]]:
    """Per view, the columns the steps read (sorted)."""
    columns: dict[str, set[str]] = {}
    for step in steps:
        columns.setdefault(step.view, set()).update(step.columns)
    return {view: sorted(names) for view, names in columns.items()}


Progress = Callable[[int, int, str], None]


def evaluate(
    steps: Sequence[CohortStep],
    scan: Callable[[str], pl.LazyFrame],
    *,
    progress: Progress | None = None,
) -> list[str]:
    """The people of the register who meet every criterion.

    Args:
        steps: from :meth:`CohortSpec.steps` (the register first).
        scan: the governed rows of a view by name (thresholds and consent already applied).
        progress: called once per criterion evaluated with (done, total, message); the
            message names the criterion kind and its position, never a count.

    Returns:
        The members' pseudonyms, sorted.

    Raises:
        CohortRefusal: when an arm is asked of a study whose arms the view does not show.
    """
    register, *criteria = steps
    members = _people(scan(register.view))
    total = len(criteria)
    for done, step in enumerate(criteria, start=1):
        frame = scan(step.view)
        if step.guard is not None:
            hidden = frame.filter(step.guard).select(pl.len()).collect().item()
            if hidden:
                raise CohortRefusal("blinded_arm", BLINDED_ARM_MESSAGE)
        if step.conditions:
            frame = frame.filter(*step.conditions)
        members = _people(frame.filter(pl.col(PERSON_COLUMN).is_in(members.implode())))
        if progress is not None:
            progress(done, total, f"criterion {done} of {total} evaluated ({step.kind})")
    return members.sort().to_list()


def _people(frame: pl.LazyFrame) -> pl.Series:
    return (
        frame.select(PERSON_COLUMN)
        .drop_nulls()
        .unique()
        .collect()
        .get_column(PERSON_COLUMN)
        .cast(pl.String)
    )


def _result_model() -> type[BaseModel]:
    reference = create_model(
        "cohort_reference",
        __config__=ConfigDict(extra="forbid"),
        __doc__="The saved cohort.",
        name=(str, Field(description="Cohort name.")),
        version=(int, Field(description="Version saved by this call.")),
        uri=(str, Field(description="Resource URI of this version.")),
    )
    return create_model(
        "find_cohort_result",
        __config__=ConfigDict(extra="forbid"),
        __doc__="The people who meet every criterion.",
        count=(
            int | None,
            Field(description="People in the cohort; null when suppressed."),
        ),
        suppressed=(bool, Field(description="True when the count is withheld as too small.")),
        min_cell_size=(int, Field(description="Counts below this are suppressed.")),
        people=(
            list[str] | None,
            Field(None, description="Research pseudonyms of the members (output pseudonyms)."),
        ),
        datasets=(list[str], Field(description="Views the criteria read, register first.")),
        delta_versions=(
            dict[str, int],
            Field(description="Delta table version each view was read at."),
        ),
        as_of=(str, Field(description="Earliest materialisation of those views (ISO 8601).")),
        freshness=(
            Literal["fresh", "warn", "stale", "unknown"],
            Field(description="The least fresh of those views against their SLAs."),
        ),
        cohort=(reference | None, Field(None, description="Set when the cohort was saved.")),
        correlation_id=(str, Field(description="Identifies this call in the audit log.")),
    )


def _job_model() -> type[BaseModel]:
    return create_model(
        "find_cohort_job",
        __config__=ConfigDict(extra="forbid"),
        __doc__="A cohort running in the background.",
        job=(str, Field(description="Job identifier.")),
        status=(Literal["running"], Field(description="The job has started.")),
        result_uri=(str, Field(description="Resource with the job's status and result.")),
    )
