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
    "restricted/person_crosswalk",
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
)
"""Every table path with a suite. ``bronze/ehr/rejects`` is the asset of that name; the
pipeline stores its rows at ``_rejects/ehr/fhir``."""
