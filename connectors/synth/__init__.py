"""A deterministic synthetic linked cohort: the same made-up people in every silo.

``build_people`` draws the roster; ``write_cohort`` writes each silo's source files from it
(the EHR as FHIR R4 bulk NDJSON; genomics as a cohort VCF with its sample manifest; imaging
as DICOM studies in two batches with the RIS orders that link them to EHR encounters; lab
results as two sites' LIS CSV exports and three sites' HL7 v2 ORU feeds with each lab's
patient index; one clinical trial as SDTM XPORT datasets with its enrolment map).
``cohort_truth`` answers a cross-silo cohort question from the writers' own plans, for tests
to hold the lake's answers to. ``write_benchmark_vcf`` writes a large VCF for the ingest
benchmark. No real patient data is used anywhere: names, places and values come from small
built-in lists and seeded random draws.
"""

from connectors.synth.cohort import AS_OF, Address, Person, build_people
from connectors.synth.dicom import write_imaging
from connectors.synth.federation import RosterFacts, cohort_truth
from connectors.synth.genomics import write_genomics
from connectors.synth.lab import lab_truth, write_lab
from connectors.synth.trial import trial_truth, write_trial
from connectors.synth.vcf_bench import write_benchmark_vcf
from connectors.synth.writer import KNOWN_SILOS, CohortSummary, write_cohort

__all__ = [
    "AS_OF",
    "KNOWN_SILOS",
    "Address",
    "CohortSummary",
    "Person",
    "RosterFacts",
    "build_people",
    "cohort_truth",
    "lab_truth",
    "trial_truth",
    "write_benchmark_vcf",
    "write_cohort",
    "write_genomics",
    "write_imaging",
    "write_lab",
    "write_trial",
]
