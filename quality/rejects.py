"""How many quarantined records a feed may have before its data stops flowing."""

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class RejectThreshold:
    """Share of a silo's records (read plus rejected) that may be quarantined."""

    warn_ratio: float
    fail_ratio: float


REJECT_THRESHOLDS: dict[str, RejectThreshold] = {
    # A healthy FHIR bulk export has no malformed lines; a few are a warning, more than 5% a
    # broken feed that must not reach the gold views.
    "bronze/ehr/files": RejectThreshold(warn_ratio=0.001, fail_ratio=0.05),
    # Variant callers write VCF by machine: a malformed record means corruption or a header
    # that does not match its body, and each one drops a site for every sample of the file
    # (skewing allele frequencies). Its ledger counts rejects inside ``records`` and names
    # them ``rejected``: pass ``records - rejected`` as records and ``rejected`` as rejects.
    "bronze/genomics/vcf_files": RejectThreshold(warn_ratio=0.0001, fail_ratio=0.01),
    # PACS exports are written by machine, but media exports carry a DICOMDIR index (rejected
    # by design) and the odd non-DICOM file, so up to 1% is noise. Past that, each reject is
    # a slice or frame missing from its series (a volume with a gap); above 5% the export is
    # broken. The ledger counts files read, instances written and files rejected: pass
    # ``instances`` as records, ``rejected`` as rejects and ``batch`` as the source_file.
    "bronze/imaging/batches": RejectThreshold(warn_ratio=0.01, fail_ratio=0.05),
    # LIS exports and HL7 interfaces are machine-written too, but interface engines pass on
    # the odd malformed message and hand-edited exports happen: up to 0.5% is noise. A
    # quarantined result is a value missing from a patient's record, so above 5% the feed
    # is broken and must not reach the views.
    "bronze/lab/files": RejectThreshold(warn_ratio=0.005, fail_ratio=0.05),
    # SDTM datasets are produced by validated programs; a dataset that cannot be read is a
    # whole domain of a study missing, so one in a thousand warns (any one, in practice), and
    # above 10% of the datasets the transfer is broken. Counted by dataset file: pass
    # 1 - rejects as records.
    "bronze/trials/files": RejectThreshold(warn_ratio=0.001, fail_ratio=0.1),
}
"""File ledgers (one per silo) to thresholds."""


@dataclass(frozen=True)
class RejectRatio:
    """The silo-wide reject ratio and the files that contribute the most rejects."""

    records: int
    rejects: int
    ratio: float
    status: str
    """``pass``, ``warn`` or ``fail``."""
    worst_files: tuple[tuple[str, int, int], ...]
    """Up to five ``(source_file, records, rejects)`` with the most rejects."""


def reject_ratio(ledger: pl.DataFrame, threshold: RejectThreshold) -> RejectRatio:
    """Compare a silo's files ledger with its threshold.

    Args:
        ledger: rows with ``source_file``, ``records`` and ``rejects``.
        threshold: the silo's threshold.

    Returns:
        The ratio, its status and the worst files (names and counts only).
    """
    records = int(ledger.get_column("records").sum() or 0)
    rejects = int(ledger.get_column("rejects").sum() or 0)
    total = records + rejects
    ratio = rejects / total if total else 0.0
    status = (
        "fail"
        if ratio > threshold.fail_ratio
        else "warn"
        if ratio > threshold.warn_ratio
        else "pass"
    )
    worst = (
        ledger.filter(pl.col("rejects") > 0)
        .sort("rejects", "source_file", descending=[True, False])
        .head(5)
        .select("source_file", "records", "rejects")
        .iter_rows()
    )
    return RejectRatio(records, rejects, ratio, status, tuple(worst))
