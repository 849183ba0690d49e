"""The table paths that have an expectation suite, importable without the suites themselves
(so the catalog scanner can ask without loading any source-format schema)."""

GENOMICS_SUITE_TABLES: tuple[str, ...] = (
    "bronze/genomics/vcf_files",
    "bronze/genomics/variants",
    "bronze/genomics/genotypes",
    "bronze/genomics/samples",
    "silver/genomics/variants",
    "silver/genomics/genotypes",
    "gold/research/variant_frequencies",
    "gold/research/genotypes",
)
"""The genomics (VCF) silo's table paths with a suite (``quality.suites.genomics``)."""

IMAGING_SUITE_TABLES: tuple[str, ...] = (
    "bronze/imaging/instances",
    "bronze/imaging/orders",
    "bronze/imaging/batches",
    "silver/imaging/dicom_instances",
    "silver/imaging/dicom_series",
    "silver/imaging/dicom_studies",
    "gold/research/imaging_studies",
    "gold/research/imaging_series",
    "gold/research/imaging_instances",
)
"""The imaging (DICOM) silo's table paths with a suite (``quality.suites.imaging``)."""

LAB_SUITE_TABLES: tuple[str, ...] = (
    "bronze/lab/results",
    "bronze/lab/files",
    "bronze/lab/patient_index",
    "silver/lab/lab_results",
    "silver/lab/mapping_report",
    "gold/research/lab_results",
)
"""The lab (LIS CSV and HL7 v2) silo's table paths with a suite (``quality.suites.lab``)."""

TRIAL_DOMAINS: tuple[str, ...] = ("dm", "ae", "lb", "vs", "ex", "ds", "cm", "mh")
"""The SDTM domains the trials silo conforms (``silver/trials/<domain>``)."""

TRIAL_SUITE_TABLES: tuple[str, ...] = (
    *(f"silver/trials/{domain}" for domain in TRIAL_DOMAINS),
    "gold/research/trial_subjects",
    "gold/research/trial_adverse_events",
    "gold/research/trial_lab_results",
)
"""The trials (CDISC SDTM) silo's table paths with a suite (``quality.suites.trials``)."""

IDENTITY_SUITE_TABLES: tuple[str, ...] = (
    "restricted/person_crosswalk",
    "restricted/identity_conflicts",
)
"""The person crosswalk and its quarantine (``quality.suites.identity``). The quarantine's suite
is named by its asset; the pipeline stores its rows at ``_rejects/identity/crosswalk``."""

CONSENT_SUITE_TABLES: tuple[str, ...] = ("silver/consent/consents",)
"""The cross-silo consent table's path (``quality.suites.consent``)."""

SUITE_TABLES: tuple[str, ...] = (
    "bronze/ehr/patients",
    "bronze/ehr/encounters",
    "bronze/ehr/conditions",
    "bronze/ehr/observations",
    "bronze/ehr/medication_requests",
    "bronze/ehr/procedures",
    "bronze/ehr/immunizations",
    "bronze/ehr/consents",
    "bronze/ehr/other_resources",
    "bronze/ehr/files",
    "bronze/ehr/rejects",
    *IDENTITY_SUITE_TABLES,
    "silver/ehr/patients",
    "silver/ehr/encounters",
    "silver/ehr/conditions",
    "silver/ehr/observations",
    "silver/ehr/medication_requests",
    "silver/ehr/procedures",
    "silver/ehr/immunizations",
    "silver/ehr/consents",
    "gold/research/patients",
    "gold/research/encounters",
    "gold/research/conditions",
    "gold/research/observations",
    "gold/research/medication_requests",
    "gold/research/procedures",
    "gold/research/immunizations",
    *GENOMICS_SUITE_TABLES,
    *IMAGING_SUITE_TABLES,
    *LAB_SUITE_TABLES,
    *TRIAL_SUITE_TABLES,
    *CONSENT_SUITE_TABLES,
)
"""Every table path with a suite. ``bronze/ehr/rejects`` is the asset of that name; the
pipeline stores its rows at ``_rejects/ehr/fhir``. ``restricted/identity_conflicts`` likewise
lives at ``_rejects/identity/crosswalk``."""
