"""Small built-in lists the synthetic roster draws from: names, places, sites.

Nothing here describes a real person. Names are common first and last names combined at
random; street numbers are random; ZIP codes are a real 3-digit prefix plus two random
digits, so that generalisation to 3-digit ZIP (and the restricted-prefix rule) has
something real to work on.
"""

from dataclasses import dataclass

GIVEN_FEMALE: tuple[str, ...] = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica",
    "Sarah", "Karen", "Nancy", "Lisa", "Margaret", "Sandra", "Ashley", "Emily", "Donna",
    "Michelle", "Carol", "Amanda", "Melissa", "Deborah", "Olivia", "Emma", "Sophia", "Ava",
    "Isabella", "Mia", "Chloe", "Zoë", "Maria", "Lucía", "Camila", "Valentina", "Mei",
    "Yuki", "Priya", "Aaliyah", "Fatima", "Ngoc", "Hannah", "Grace", "Noor", "Siobhan",
)
GIVEN_MALE: tuple[str, ...] = (
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas",
    "Charles", "Christopher", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven",
    "Paul", "Andrew", "Joshua", "Kevin", "Brian", "George", "Liam", "Noah", "Ethan", "Lucas",
    "Mateo", "José", "Luis", "Carlos", "Diego", "Wei", "Hiroshi", "Arjun", "Omar", "Minh",
    "Kwame", "Malik", "Samuel", "Jamal", "Tomás", "Rahul", "Connor",
)
FAMILY: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
    "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White",
    "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Hill", "Green", "Adams", "Baker", "Nelson", "Carter", "Mitchell", "Roberts",
    "Campbell", "O'Brien", "Murphy", "Kelly", "Sullivan", "Nguyen", "Tran", "Kim", "Park",
    "Chen", "Wang", "Li", "Patel", "Shah", "Singh", "Tanaka", "Okafor", "Mensah", "Haddad",
    "Kowalski", "Novak", "Rossi", "Schmidt", "Müller", "Dubois", "Cohen", "Levy",
)
FAMILY_HISPANIC: tuple[str, ...] = (
    "Garcia", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Perez", "Sanchez",
    "Ramirez", "Torres", "Flores", "Rivera", "Gomez", "Diaz", "Reyes", "Morales", "Cruz",
    "Ortiz", "Gutierrez", "Chavez", "Ramos", "Núñez", "Peña", "Castillo",
)

STREETS: tuple[str, ...] = (
    "Maple", "Oak", "Pine", "Cedar", "Elm", "Washington", "Lincoln", "Park", "Lake", "Hill",
    "Main", "Church", "Spring", "Ridge", "Meadow", "River", "Sunset", "Highland", "Forest",
    "Willow", "Chestnut", "Franklin", "Jefferson", "Adams", "Madison", "Cherry", "Walnut",
)
STREET_SUFFIXES: tuple[str, ...] = ("St", "Ave", "Rd", "Ln", "Dr", "Ct", "Way", "Blvd", "Pl")


@dataclass(frozen=True)
class Site:
    """A hospital site of the federation.

    Attributes:
        code: the site code used across silos (``SITE-A01``).
        short: the short form used inside trial subject ids (``A01``).
        city, state: where the site is.
        utc_offset_hours: standard-time offset from UTC.
        observes_dst: whether the site's clock moves for US daylight saving time.
    """

    code: str
    short: str
    city: str
    state: str
    utc_offset_hours: int
    observes_dst: bool


SITES: tuple[Site, ...] = (
    Site("SITE-A01", "A01", "Boston", "MA", -5, True),
    Site("SITE-A02", "A02", "Hartford", "CT", -5, True),
    Site("SITE-B07", "B07", "Denver", "CO", -7, True),
    Site("SITE-C03", "C03", "Houston", "TX", -6, True),
    Site("SITE-D02", "D02", "Phoenix", "AZ", -7, False),
)
SITE_WEIGHTS: tuple[float, ...] = (0.30, 0.15, 0.20, 0.20, 0.15)
SITES_BY_CODE: dict[str, Site] = {s.code: s for s in SITES}


@dataclass(frozen=True)
class Place:
    """A town a patient may live in: its 3-digit ZIP prefix and state."""

    city: str
    state: str
    zip3: str


# Home towns per site: most people live near their site, a few come from far away.
# The second group of each site holds 3-digit ZIP prefixes that HIPAA Safe Harbor
# restricts (fewer than 20,000 residents), so de-identification has work to do.
PLACES: dict[str, tuple[tuple[Place, ...], tuple[Place, ...]]] = {
    "SITE-A01": (
        (
            Place("Boston", "MA", "021"),
            Place("Cambridge", "MA", "021"),
            Place("Worcester", "MA", "016"),
            Place("Lowell", "MA", "018"),
            Place("Quincy", "MA", "021"),
            Place("Providence", "RI", "029"),
            Place("Manchester", "NH", "031"),
        ),
        (
            Place("Charlestown", "NH", "036"),
            Place("Canaan", "VT", "059"),
            Place("Groton", "CT", "063"),
        ),
    ),
    "SITE-A02": (
        (
            Place("Hartford", "CT", "061"),
            Place("New Haven", "CT", "065"),
            Place("Springfield", "MA", "011"),
            Place("Bronx", "NY", "104"),
            Place("Stamford", "CT", "069"),
        ),
        (
            Place("Groton", "CT", "063"),
            Place("New York", "NY", "102"),
            Place("Washington", "DC", "203"),
        ),
    ),
    "SITE-B07": (
        (
            Place("Denver", "CO", "802"),
            Place("Aurora", "CO", "800"),
            Place("Boulder", "CO", "803"),
            Place("Colorado Springs", "CO", "809"),
            Place("Cheyenne", "WY", "820"),
        ),
        (
            Place("Rawlins", "WY", "823"),
            Place("Jackson", "WY", "830"),
            Place("Kemmerer", "WY", "831"),
            Place("Yellowstone National Park", "WY", "821"),
            Place("Socorro", "NM", "878"),
            Place("Truth or Consequences", "NM", "879"),
            Place("Tucumcari", "NM", "884"),
        ),
    ),
    "SITE-C03": (
        (
            Place("Houston", "TX", "770"),
            Place("Pasadena", "TX", "775"),
            Place("Sugar Land", "TX", "774"),
            Place("Galveston", "TX", "775"),
            Place("Beaumont", "TX", "777"),
        ),
        (
            Place("Pampa", "TX", "790"),
            Place("Two Harbors", "MN", "556"),
            Place("Valentine", "NE", "692"),
        ),
    ),
    "SITE-D02": (
        (
            Place("Phoenix", "AZ", "850"),
            Place("Mesa", "AZ", "852"),
            Place("Tempe", "AZ", "852"),
            Place("Tucson", "AZ", "857"),
            Place("Flagstaff", "AZ", "860"),
        ),
        (
            Place("Ely", "NV", "893"),
            Place("Alamo", "NV", "890"),
        ),
    ),
}
RESTRICTED_SHARE = 0.07
"""Share of people living in a town with a restricted 3-digit ZIP prefix."""

RESTRICTED_ZIP3: frozenset[str] = frozenset(
    {
        "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831",
        "878", "879", "884", "890", "893",
    }
)
"""3-digit ZIP prefixes with 20,000 or fewer residents (HIPAA Safe Harbor, 2000 census)."""

# Age bands (inclusive lower, exclusive upper) and their weights: a US-like pyramid,
# slightly older, as a health system's patients are.
AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (0, 5, 5.8), (5, 10, 5.9), (10, 15, 6.2), (15, 20, 6.2), (20, 25, 6.2), (25, 30, 6.6),
    (30, 35, 6.8), (35, 40, 6.5), (40, 45, 6.2), (45, 50, 6.0), (50, 55, 6.3), (55, 60, 6.6),
    (60, 65, 6.5), (65, 70, 5.7), (70, 75, 4.8), (75, 80, 3.4), (80, 85, 2.3), (85, 90, 1.5),
    (90, 95, 0.9), (95, 101, 0.4),
)

RACE_WEIGHTS: tuple[tuple[str | None, float], ...] = (
    ("2106-3", 0.66),
    ("2054-5", 0.14),
    ("2028-9", 0.07),
    ("1002-5", 0.015),
    ("2076-8", 0.005),
    (None, 0.11),
)
"""OMB race code and weight; ``None`` means not reported (text only)."""

HISPANIC_SHARE = 0.19
