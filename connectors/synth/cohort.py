"""The synthetic roster: the same people, described by every silo writer.

Each person is drawn from random streams of their own, seeded from ``(seed, index)``, so
person *i* is the same whether the cohort has 10 or 5,000 people, and a silo writer that
uses ``person.rng("<silo>")`` produces the same output for that person whatever the other
silos do. Identifiers that must be unique across the roster (MRNs, sample ids, trial subject
numbers) depend only on the people before *i*, which keeps every roster a prefix of a longer
one.
"""

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from connectors.synth import demographics as demo

AS_OF = date(2025, 6, 30)
"""The cohort's "today": ages, histories and consent states are as of this date."""

HISTORY_YEARS = 10
"""How far back the EHR history of a person reaches."""

Gender = Literal["male", "female", "other", "unknown"]
ConsentState = Literal["permit", "deny", "revoked"]

_GENDERS: tuple[Gender, ...] = ("male", "female", "other", "unknown")
_GENDER_WEIGHTS = (0.49, 0.49, 0.01, 0.01)
_CONSENTS: tuple[ConsentState, ...] = ("permit", "deny", "revoked")
_CONSENT_WEIGHTS = (0.85, 0.10, 0.05)


@dataclass(frozen=True)
class Address:
    """A home address."""

    lines: tuple[str, ...]
    city: str
    state: str
    postal_code: str
    country: str = "US"


@dataclass(frozen=True)
class Person:
    """One synthetic person, as every silo knows them.

    Attributes:
        index: position in the roster (0-based); stable across cohort sizes.
        seed: the cohort seed the person was drawn from.
        patient_id: FHIR Patient id (a UUID derived from the seed).
        mrn: EHR medical record number (``MRN`` + 8 digits).
        given_names: official given names (first, then middle if any).
        family_name: official family name.
        gender: FHIR administrative gender.
        birth_date: date of birth.
        deceased_date: date of death, or None.
        address: home address.
        race: OMB race code (``urn:oid:2.16.840.1.113883.6.238``), or None if not reported.
        ethnicity: OMB ethnicity code.
        marital_status: v3 MaritalStatus code, or None for children.
        language: preferred language (BCP-47).
        home_site: site code (``SITE-A01`` ...).
        research_consent: biobank research consent state: permit, deny or revoked.
        consent_date: when the consent decision was recorded.
        consent_revoked_date: when a permit was revoked, or None.
        lab_mrn: the MRN in the site's lab system (differs from ``mrn`` for ~30%).
        dicom_patient_id: PatientID used by the site's PACS.
        vcf_sample_id: biobank DNA sample id, for the ~40% sequenced, else None.
        trial_usubjid: CDISC USUBJID for the ~20% enrolled in the trial, else None.
    """

    index: int
    seed: int
    patient_id: str
    mrn: str
    given_names: tuple[str, ...]
    family_name: str
    gender: Gender
    birth_date: date
    deceased_date: date | None
    address: Address
    race: str | None
    ethnicity: str
    marital_status: str | None
    language: str
    home_site: str
    research_consent: ConsentState
    consent_date: date
    consent_revoked_date: date | None
    lab_mrn: str
    dicom_patient_id: str
    vcf_sample_id: str | None
    trial_usubjid: str | None

    def rng(self, stream: str) -> random.Random:
        """A fresh random generator for this person and one output stream.

        Each silo writer uses its own stream name (``"ehr"``, ``"lab"``, ``"dicom"`` ...), so
        what one silo draws never shifts what another silo draws.

        Args:
            stream: the name of the stream, usually the silo.

        Returns:
            A ``random.Random`` seeded from ``(seed, index, stream)``.
        """
        return random.Random(f"biofed/{self.seed}/{self.index}/{stream}")

    @property
    def site(self) -> demo.Site:
        """The person's home site."""
        return demo.SITES_BY_CODE[self.home_site]

    @property
    def end_date(self) -> date:
        """The last day the person has a record: the day of death, or ``AS_OF``."""
        return self.deceased_date or AS_OF

    def age_on(self, day: date) -> int:
        """Age in completed years on a given day."""
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years


def _weighted(rng: random.Random, items: tuple, weights: tuple[float, ...]):
    return rng.choices(items, weights=weights)[0]


def _birth_date(rng: random.Random) -> date:
    bands = demo.AGE_BANDS
    low, high, _ = _weighted(rng, bands, tuple(w for _, _, w in bands))
    age = rng.randrange(low, high)
    # Born between (age + 1) years and age years before AS_OF, never on AS_OF itself.
    latest = AS_OF.replace(year=AS_OF.year - age) - timedelta(days=1)
    return latest - timedelta(days=rng.randrange(364))


def _death_probability(age: int) -> float:
    if age < 40:
        return 0.005
    if age < 65:
        return 0.04
    if age < 80:
        return 0.15
    return 0.35


def _marital_status(rng: random.Random, age: int) -> str | None:
    if age < 18:
        return None
    if age < 30:
        return _weighted(rng, ("S", "M", "D"), (0.70, 0.26, 0.04))
    if age < 65:
        return _weighted(rng, ("M", "S", "D", "W"), (0.55, 0.25, 0.17, 0.03))
    return _weighted(rng, ("M", "W", "D", "S"), (0.50, 0.30, 0.12, 0.08))


def _language(rng: random.Random, race: str | None, hispanic: bool) -> str:
    draw = rng.random()
    if hispanic:
        return "es" if draw < 0.40 else "en-US"
    if race == "2028-9":
        if draw < 0.15:
            return "zh"
        if draw < 0.25:
            return "vi"
    elif draw < 0.01:
        return "pt"
    return "en-US"


def _address(rng: random.Random, site: str) -> Address:
    near, restricted = demo.PLACES[site]
    towns = restricted if rng.random() < demo.RESTRICTED_SHARE else near
    place = rng.choice(towns)
    line = f"{rng.randint(1, 9999)} {rng.choice(demo.STREETS)} {rng.choice(demo.STREET_SUFFIXES)}"
    lines = (line, f"Apt {rng.randint(1, 40)}{rng.choice('ABCD')}") if rng.random() < 0.15 else (
        line,
    )
    postal_code = f"{place.zip3}{rng.randrange(1, 100):02d}"
    return Address(lines, place.city, place.state, postal_code)


def _random_day(rng: random.Random, first: date, last: date) -> date:
    span = (last - first).days
    return first + timedelta(days=rng.randint(0, max(span, 0)))


class _Registry:
    """Roster-wide uniqueness of identifiers and per-site trial numbering."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.trial_numbers: dict[str, int] = {}

    def unique(self, draw: Callable[[], str]) -> str:
        value = draw()
        while value in self.seen:
            value = draw()
        self.seen.add(value)
        return value

    def next_trial_number(self, site: str) -> int:
        number = self.trial_numbers.get(site, 0) + 1
        self.trial_numbers[site] = number
        return number


def _person(index: int, seed: int, registry: _Registry) -> Person:
    rng = random.Random(f"biofed-roster/{seed}/{index}")
    patient_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    gender: Gender = _weighted(rng, _GENDERS, _GENDER_WEIGHTS)
    birth_date = _birth_date(rng)
    before_birthday = (AS_OF.month, AS_OF.day) < (birth_date.month, birth_date.day)
    age = AS_OF.year - birth_date.year - before_birthday

    deceased_date = None
    if rng.random() < _death_probability(age):
        first = max(birth_date + timedelta(days=1), AS_OF - timedelta(days=5 * 365))
        deceased_date = _random_day(rng, first, AS_OF - timedelta(days=1))

    hispanic = rng.random() < demo.HISPANIC_SHARE
    races, race_weights = zip(*demo.RACE_WEIGHTS, strict=True)
    race = _weighted(rng, races, race_weights)
    if gender == "female":
        given_pool = demo.GIVEN_FEMALE
    elif gender == "male":
        given_pool = demo.GIVEN_MALE
    else:
        given_pool = demo.GIVEN_FEMALE + demo.GIVEN_MALE
    given = rng.choice(given_pool)
    given_names = (given, rng.choice(given_pool)) if rng.random() < 0.25 else (given,)
    family_pool = demo.FAMILY_HISPANIC if hispanic and rng.random() < 0.75 else demo.FAMILY
    family_name = rng.choice(family_pool)

    marital_status = _marital_status(rng, age)
    language = _language(rng, race, hispanic)
    site = _weighted(rng, tuple(s.code for s in demo.SITES), demo.SITE_WEIGHTS)
    address = _address(rng, site)

    end = deceased_date or AS_OF
    consent: ConsentState = _weighted(rng, _CONSENTS, _CONSENT_WEIGHTS)
    consent_first = max(birth_date, AS_OF - timedelta(days=8 * 365))
    consent_date = _random_day(rng, consent_first, end - timedelta(days=1))
    revoked_date = None
    if consent == "revoked":
        revoked_date = _random_day(rng, min(consent_date + timedelta(days=30), end), end)

    ids = random.Random(f"biofed-ids/{seed}/{index}")
    short = demo.SITES_BY_CODE[site].short
    mrn = registry.unique(lambda: f"MRN{ids.randrange(10**8):08d}")
    lab_mrn = mrn
    if ids.random() < 0.30:
        lab_mrn = registry.unique(lambda: f"LAB{ids.randrange(10**8):08d}")
    dicom_patient_id = registry.unique(lambda: f"{short}-{ids.randrange(10**7):07d}")
    vcf_sample_id = None
    # Only people who agreed to the biobank (even if they later withdrew) gave a sample.
    if consent != "deny" and ids.random() < 0.445:
        vcf_sample_id = registry.unique(lambda: f"BF01-S{ids.randrange(10**6):06d}")
    trial_usubjid = None
    if ids.random() < 0.20:
        trial_usubjid = f"BIOFED-01-{short}-{registry.next_trial_number(site):04d}"

    return Person(
        index=index,
        seed=seed,
        patient_id=patient_id,
        mrn=mrn,
        given_names=given_names,
        family_name=family_name,
        gender=gender,
        birth_date=birth_date,
        deceased_date=deceased_date,
        address=address,
        race=race,
        ethnicity="2135-2" if hispanic else "2186-5",
        marital_status=marital_status,
        language=language,
        home_site=site,
        research_consent=consent,
        consent_date=consent_date,
        consent_revoked_date=revoked_date,
        lab_mrn=lab_mrn,
        dicom_patient_id=dicom_patient_id,
        vcf_sample_id=vcf_sample_id,
        trial_usubjid=trial_usubjid,
    )


def build_people(patients: int, seed: int) -> list[Person]:
    """Draw the synthetic roster that every silo writer describes.

    The roster for ``n`` people is the first ``n`` entries of the roster for any larger
    number with the same seed.

    Args:
        patients: how many people (0 or more).
        seed: the cohort seed.

    Returns:
        The people, in index order.

    Raises:
        ValueError: if ``patients`` is negative or either argument is not an integer.
    """
    if isinstance(patients, bool) or not isinstance(patients, int) or patients < 0:
        raise ValueError("patients must be a whole number of 0 or more")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError("seed must be an integer")
    registry = _Registry()
    return [_person(index, seed, registry) for index in range(patients)]
