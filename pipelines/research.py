"""What every research view is built with: the audience's pseudonyms, date shifts, consent."""

from datetime import UTC, datetime

import polars as pl

from mcp_catalog.governance.consent import consented_people
from mcp_catalog.governance.deid import Pseudonyms, date_shifts
from mcp_catalog.governance.views import ViewContext
from mcp_catalog.policy import load_policy
from pipelines.lake import Lake
from pipelines.resources import LakeResource

CROSSWALK_PATH = "restricted/person_crosswalk"
SURROGATES_PATH = "restricted/surrogates"
CONSENTS_PATH = "silver/ehr/consents"


def pseudonyms_for(store: Lake, lake: LakeResource, audience: str) -> Pseudonyms:
    """The audience's pseudonym scheme as the policy sets it (keyed or surrogate)."""
    if load_policy().pseudonym_scheme(audience) == "surrogate":
        mapping = store.read(SURROGATES_PATH)
        return Pseudonyms(
            surrogates=mapping.filter(pl.col("audience") == audience).drop("audience")
        )
    return Pseudonyms(key=lake.deid_keys().for_audience(audience))


def research_context(store: Lake, lake: LakeResource, audience: str) -> ViewContext:
    """Pseudonyms, per-person date shifts and consented people, as of now."""
    now = datetime.now(UTC)
    crosswalk = store.read(CROSSWALK_PATH)
    return ViewContext(
        pseudonyms=pseudonyms_for(store, lake, audience),
        shifts=date_shifts(
            crosswalk.get_column("person_key").unique().to_list(),
            key=lake.deid_keys().date_shift,
        ),
        consented=consented_people(store.read(CONSENTS_PATH), as_of=now),
        reference_date=now.date(),
    )
