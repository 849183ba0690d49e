"""A deterministic synthetic linked cohort: the same made-up people in every silo.

``build_people`` draws the roster; ``write_cohort`` writes each silo's source files from it
(today the EHR as FHIR R4 bulk NDJSON). No real patient data is used anywhere: names, places
and values come from small built-in lists and seeded random draws.
"""

from connectors.synth.cohort import AS_OF, Address, Person, build_people
from connectors.synth.writer import KNOWN_SILOS, CohortSummary, write_cohort

__all__ = [
    "AS_OF",
    "KNOWN_SILOS",
    "Address",
    "CohortSummary",
    "Person",
    "build_people",
    "write_cohort",
]
