import gc
import gzip
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.errors import MalformedRecordError, SourceNotFoundError, UnsupportedFormatError
from connectors.fhir import REJECTS, iter_fhir_batches, read_fhir
from connectors.fhir.extract import EXTRACTORS
from connectors.fhir.schema import RESOURCE_COLUMNS, TABLE_NAMES, table_schema
from connectors.result import REJECT_SCHEMA

DATA = Path(__file__).resolve().parents[2] / "data" / "fhir"
TYPED = DATA / "typed"
MALFORMED = DATA / "malformed.ndjson"

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"

# Every bad line of malformed.ndjson carries this family name somewhere; no message may.
SECRET = "Quillfeather"

MALFORMED_REJECTS = [
    ("line:2", "line is not valid JSON"),
    ("line:4", "line is not a JSON object"),
    ("line:5", "resource has no resourceType"),
    ("line:6", "resource has no id"),
    ("line:7", "Observation.valueQuantity.value is not a number"),
    ("line:8", "Patient.gender is not one of male, female, other, unknown"),
    ("line:9", "Encounter.period.start is not a valid date-time"),
    ("line:10", "Condition.subject is not an object"),
    ("line:11", "Patient.birthDate is not a valid date"),
    ("line:12", "Patient.name[0].family is not a string"),
]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def line_row(path: Path, number: int, **values: object) -> dict[str, object]:
    """Expected row of a resource on line ``number`` of an NDJSON fixture."""
    text = path.read_text(encoding="utf-8").splitlines()[number - 1].strip()
    return {
        **values,
        "source_file": str(path),
        "source_locator": f"line:{number}",
        "resource_json": text,
    }


def expected_frame(table: str, rows: list[dict[str, object]]) -> pl.DataFrame:
    schema = table_schema(table)
    return pl.DataFrame({name: [row.get(name) for row in rows] for name in schema}, schema=schema)


def assert_table(path: Path, table: str, rows: list[dict[str, object]]) -> None:
    result = read_fhir(path)
    assert list(result.tables) == [table]
    assert dict(result.tables[table].schema) == table_schema(table)
    assert_frame_equal(result.tables[table], expected_frame(table, rows))
    assert_frame_equal(result.rejects, pl.DataFrame(schema=REJECT_SCHEMA))


def rejects_frame(source: Path, rows: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(str(source), locator, reason) for locator, reason in rows],
        schema=REJECT_SCHEMA,
        orient="row",
    )


def test_every_typed_resource_type_has_an_extractor_matching_its_columns():
    assert EXTRACTORS.keys() == TABLE_NAMES.keys()
    path = TYPED / "Consent.ndjson"
    assert len(read_fhir(path).tables["consents"].columns) == len(RESOURCE_COLUMNS["Consent"]) + 3


def test_patients_are_extracted_from_ndjson():
    path = TYPED / "Patient.ndjson"
    assert_table(
        path,
        "patients",
        [
            line_row(
                path,
                1,
                id="pat-1",
                mrn="MRN-0001",
                family_name="Testperson",
                given_name="Alba Rose",
                gender="female",
                birth_date=date(1950, 2, 3),
                deceased=True,
                deceased_datetime=utc(2020, 5, 6, 5, 8, 9),
                address_line="12 Example Street",
                city="Sampleville",
                state="EX",
                postal_code="00001",
                country="XX",
                race="White",
                ethnicity="Not Hispanic or Latino",
                marital_status="W",
                language="fr-CA",
            ),
            # Line 2 is blank. A partial birthDate gives a null birth_date, not a reject.
            line_row(
                path,
                3,
                id="pat-2",
                mrn="OTHER-2",
                family_name="Sampleman",
                given_name="Bo",
                gender="unknown",
                deceased=False,
                city="Worktown",
            ),
            line_row(path, 4, id="pat-3"),
        ],
    )


def test_encounters_are_extracted_from_ndjson():
    path = TYPED / "Encounter.ndjson"
    assert_table(
        path,
        "encounters",
        [
            line_row(
                path,
                1,
                id="enc-1",
                patient_id="pat-1",
                status="finished",
                class_code="AMB",
                type_system=SNOMED,
                type_code="185349003",
                type_display="Encounter for check up",
                period_start=utc(2019, 3, 4, 14, 0),
                period_end=utc(2019, 3, 4, 14, 30),
                reason_system=SNOMED,
                reason_code="444814009",
                reason_display="Viral sinusitis",
            ),
            line_row(
                path,
                2,
                id="enc-2",
                patient_id="pat-2",
                status="in-progress",
                class_code="EMER",
                period_start=utc(2021, 7, 1),
            ),
        ],
    )


def test_conditions_prefer_the_snomed_coding_and_ignore_group_subjects():
    path = TYPED / "Condition.ndjson"
    assert_table(
        path,
        "conditions",
        [
            line_row(
                path,
                1,
                id="cond-1",
                patient_id="pat-1",
                encounter_id="enc-1",
                clinical_status="active",
                verification_status="confirmed",
                category="encounter-diagnosis",
                system=SNOMED,
                code="444814009",
                display="Viral sinusitis (disorder)",
                onset_datetime=utc(2019, 3, 4, 14, 0),
                abatement_datetime=utc(2019, 3, 1),
                recorded_date=utc(2019, 3, 4, 10, 15, 30),
            ),
            line_row(
                path,
                2,
                id="cond-2",
                system="http://hl7.org/fhir/sid/icd-10-cm",
                code="E11.9",
                display="Type 2 diabetes",
                onset_datetime=utc(2010, 1, 1),
            ),
        ],
    )


def test_observations_keep_quantity_coded_string_and_panel_values():
    path = TYPED / "Observation.ndjson"
    assert_table(
        path,
        "observations",
        [
            line_row(
                path,
                1,
                id="obs-1",
                patient_id="pat-1",
                encounter_id="enc-1",
                status="final",
                category="laboratory",
                system=LOINC,
                code="2339-0",
                display="Glucose [Mass/volume] in Blood",
                effective_datetime=utc(2019, 3, 4, 9, 10),
                value_quantity=95.0,
                value_unit="mg/dL",
                interpretation="N",
            ),
            line_row(
                path,
                2,
                id="obs-2",
                patient_id="pat-2",
                status="final",
                category="social-history",
                system=LOINC,
                code="72166-2",
                display="Tobacco smoking status",
                effective_datetime=utc(2020, 1, 2, 3, 4, 5, 678000),
                value_system=SNOMED,
                value_code="266919005",
                value_display="Never smoked tobacco",
            ),
            # A conditional subject reference names no patient id.
            line_row(
                path,
                3,
                id="obs-3",
                status="preliminary",
                display="Visual inspection",
                effective_datetime=utc(2020, 2, 2, 7, 0),
                value_string="Clear, no abnormality",
            ),
            # A blood-pressure panel: the values live in components, kept in resource_json.
            line_row(
                path,
                4,
                id="obs-4",
                patient_id="pat-1",
                status="final",
                category="vital-signs",
                system=LOINC,
                code="85354-9",
                display="Blood pressure panel",
                effective_datetime=utc(2019, 3, 4),
            ),
            line_row(
                path,
                5,
                id="obs-5",
                patient_id="pat-2",
                status="amended",
                system=LOINC,
                code="9279-1",
                value_quantity=1.5,
                value_unit="cups/day",
            ),
        ],
    )


def test_medication_requests_keep_rows_with_a_medication_reference():
    path = TYPED / "MedicationRequest.ndjson"
    assert_table(
        path,
        "medication_requests",
        [
            line_row(
                path,
                1,
                id="med-1",
                patient_id="pat-1",
                encounter_id="enc-1",
                status="active",
                intent="order",
                medication_system="http://www.nlm.nih.gov/research/umls/rxnorm",
                medication_code="197361",
                medication_display="Amlodipine 5 MG Oral Tablet",
                authored_on=utc(2019, 3, 4, 14, 20),
                dosage_text="1 tablet daily",
            ),
            line_row(
                path,
                2,
                id="med-2",
                patient_id="pat-2",
                status="stopped",
                intent="plan",
                authored_on=utc(2020, 1, 1),
            ),
        ],
    )


def test_procedures_read_a_period_or_a_single_date_time():
    path = TYPED / "Procedure.ndjson"
    assert_table(
        path,
        "procedures",
        [
            line_row(
                path,
                1,
                id="proc-1",
                patient_id="pat-1",
                encounter_id="enc-1",
                status="completed",
                system=SNOMED,
                code="430193006",
                display="Medication reconciliation",
                performed_start=utc(2019, 3, 4, 14, 15),
                performed_end=utc(2019, 3, 4, 14, 25),
            ),
            line_row(
                path,
                2,
                id="proc-2",
                patient_id="pat-2",
                status="completed",
                system="http://www.ama-assn.org/go/cpt",
                code="12345",
                performed_start=utc(2018, 12, 1, 1, 30),
                performed_end=utc(2018, 12, 1, 1, 30),
            ),
        ],
    )


def test_immunizations_take_the_patient_from_an_absolute_reference():
    path = TYPED / "Immunization.ndjson"
    assert_table(
        path,
        "immunizations",
        [
            line_row(
                path,
                1,
                id="imm-1",
                patient_id="pat-1",
                encounter_id="enc-1",
                status="completed",
                vaccine_system="http://hl7.org/fhir/sid/cvx",
                vaccine_code="140",
                vaccine_display="Influenza, seasonal, injectable, preservative free",
                occurrence_datetime=utc(2019, 3, 4, 14, 5),
            ),
            line_row(
                path,
                2,
                id="imm-2",
                patient_id="pat-2",
                status="not-done",
                vaccine_display="Unknown vaccine",
            ),
        ],
    )


def test_consents_read_policy_rule_or_policy_uri_and_provision():
    path = TYPED / "Consent.ndjson"
    assert_table(
        path,
        "consents",
        [
            line_row(
                path,
                1,
                id="con-1",
                patient_id="pat-1",
                status="active",
                scope="research",
                category_code="59284-0",
                policy_uri="hipaa-research",
                provision_type="permit",
                provision_purposes=["HRESCH", "TREAT"],
                provision_start=utc(2019, 1, 1),
                provision_end=utc(2024, 12, 31),
                date_time=utc(2018, 12, 10, 9, 0),
            ),
            line_row(
                path,
                2,
                id="con-2",
                patient_id="pat-2",
                status="rejected",
                scope="patient-privacy",
                category_code="64292-6",
                policy_uri="https://example.org/policies/opt-out",
                provision_type="deny",
            ),
        ],
    )


def test_other_resource_types_land_in_other_resources_with_their_patient():
    path = TYPED / "Other.ndjson"
    assert_table(
        path,
        "other_resources",
        [
            line_row(path, 1, resource_type="AllergyIntolerance", id="alg-1", patient_id="pat-1"),
            line_row(path, 2, resource_type="Organization", id="org-1"),
            line_row(path, 3, resource_type="DiagnosticReport", id="dr-1", patient_id="pat-2"),
        ],
    )


def test_a_folder_is_read_in_sorted_order_and_equals_its_files_concatenated():
    folder = read_fhir(TYPED)
    assert list(folder.tables) == [*TABLE_NAMES.values(), "other_resources"]
    per_table: dict[str, list[pl.DataFrame]] = {}
    for path in sorted(TYPED.iterdir()):
        for table, frame in read_fhir(path).tables.items():
            per_table.setdefault(table, []).append(frame)
    assert folder.tables.keys() == per_table.keys()
    for table, frames in per_table.items():
        assert_frame_equal(folder.tables[table], pl.concat(frames))
    assert folder.rejects.is_empty()


def test_tiny_batches_give_the_same_rows_as_read_fhir():
    for source in (TYPED, MALFORMED, DATA / "bundles"):
        whole = read_fhir(source, on_error="quarantine")
        tables: dict[str, list[pl.DataFrame]] = {}
        rejects = []
        for batch in iter_fhir_batches(source, on_error="quarantine", batch_size=2):
            assert 0 < batch.frame.height <= 2
            if batch.table == REJECTS:
                rejects.append(batch.frame)
            else:
                assert dict(batch.frame.schema) == table_schema(batch.table)
                tables.setdefault(batch.table, []).append(batch.frame)
        assert set(tables) == set(whole.tables)
        for table, frame in whole.tables.items():
            assert_frame_equal(pl.concat(tables[table]), frame)
        all_rejects = pl.concat([pl.DataFrame(schema=REJECT_SCHEMA), *rejects])
        assert_frame_equal(all_rejects, whole.rejects)


def test_malformed_lines_are_quarantined_with_file_line_and_reason():
    result = read_fhir(MALFORMED, on_error="quarantine")
    assert list(result.tables) == ["patients", "observations"]
    assert result.tables["patients"]["id"].to_list() == ["pat-ok"]
    assert result.tables["observations"]["source_locator"].to_list() == ["line:13"]
    assert_frame_equal(result.rejects, rejects_frame(MALFORMED, MALFORMED_REJECTS))


@pytest.mark.parametrize(("locator", "reason"), MALFORMED_REJECTS)
def test_in_raise_mode_a_malformed_line_raises_with_its_locator_but_not_its_value(
    tmp_path, locator, reason
):
    # Keep the good lines and this one bad line, blanking the others so line numbers hold.
    bad_number = int(locator.removeprefix("line:"))
    lines = MALFORMED.read_text(encoding="utf-8").splitlines()
    bad_numbers = {int(loc.removeprefix("line:")) for loc, _ in MALFORMED_REJECTS}
    kept = [
        "" if number in bad_numbers and number != bad_number else text
        for number, text in enumerate(lines, 1)
    ]
    path = tmp_path / "one-bad-line.ndjson"
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")

    with pytest.raises(MalformedRecordError) as caught:
        read_fhir(path)

    error = caught.value
    assert (error.source, error.locator, error.reason) == (str(path), locator, reason)
    assert locator in str(error)
    chain = [error, error.__cause__, error.__context__]
    assert not any(SECRET in str(link) for link in chain if link is not None)


def test_a_patient_value_never_appears_in_a_reject_reason():
    result = read_fhir(MALFORMED, on_error="quarantine")
    text = " ".join(
        f"{source} {locator} {reason}" for source, locator, reason in result.rejects.iter_rows()
    )
    assert SECRET not in text
    assert len(result.rejects) == len(MALFORMED_REJECTS)


def test_a_bulk_export_log_file_is_rejected_as_a_whole():
    log = DATA / "bulk-export" / "log.ndjson"
    result = read_fhir(DATA / "bulk-export", on_error="quarantine")
    assert result.tables["patients"]["id"].to_list() == ["pat-export-1"]
    assert_frame_equal(
        result.rejects, rejects_frame(log, [("file", "bulk-export log file, not resources")])
    )
    with pytest.raises(MalformedRecordError, match="bulk-export log file"):
        read_fhir(log)


def test_log_events_mixed_with_resources_are_rejected_line_by_line(tmp_path):
    log_lines = (DATA / "bulk-export" / "log.ndjson").read_text(encoding="utf-8").splitlines()
    patient = (DATA / "bulk-export" / "Patient.ndjson").read_text(encoding="utf-8").strip()
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join([log_lines[0], patient, log_lines[1]]) + "\n", encoding="utf-8")
    result = read_fhir(path, on_error="quarantine")
    assert result.tables["patients"]["source_locator"].to_list() == ["line:2"]
    reason = "line is a bulk-export log event, not a resource"
    expected = rejects_frame(path, [("line:1", reason), ("line:3", reason)])
    assert_frame_equal(result.rejects, expected)


def test_a_byte_order_mark_is_stripped(tmp_path):
    source = TYPED / "Patient.ndjson"
    copy = tmp_path / "Patient.ndjson"
    copy.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())
    expected = read_fhir(source).tables["patients"].with_columns(source_file=pl.lit(str(copy)))
    assert_frame_equal(read_fhir(copy).tables["patients"], expected)


def test_gzipped_ndjson_reads_like_the_plain_file(tmp_path):
    source = TYPED / "Observation.ndjson"
    packed = tmp_path / "Observation.ndjson.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    expected = (
        read_fhir(source).tables["observations"].with_columns(source_file=pl.lit(str(packed)))
    )
    assert_frame_equal(read_fhir(packed).tables["observations"], expected)


def test_a_truncated_gzip_file_keeps_its_readable_rows_and_rejects_the_rest(tmp_path):
    source = TYPED / "Observation.ndjson"
    packed = gzip.compress(source.read_bytes() * 50)
    path = tmp_path / "Observation.ndjson.gz"
    path.write_bytes(packed[: len(packed) // 2])
    result = read_fhir(path, on_error="quarantine")
    assert result.tables["observations"].height > 0
    assert result.rejects["reason"].to_list() == ["file is truncated or not a valid gzip stream"]
    with pytest.raises(MalformedRecordError, match="not a valid gzip stream"):
        read_fhir(path)


def test_binary_content_is_rejected_not_raised_as_a_decode_error(tmp_path):
    ndjson = tmp_path / "binary.ndjson"
    ndjson.write_bytes(bytes(range(256)) * 4)
    result = read_fhir(ndjson, on_error="quarantine")
    assert result.tables == {}
    assert set(result.rejects["reason"]) == {"line is not valid JSON"}
    bundle = tmp_path / "binary.json"
    bundle.write_bytes(bytes(range(256)))
    with pytest.raises(MalformedRecordError, match="at file: file is not valid JSON"):
        read_fhir(bundle)


def test_a_json_file_that_is_neither_bundle_nor_resource_is_rejected():
    path = DATA / "export-manifest.json"
    result = read_fhir(path, on_error="quarantine")
    assert result.tables == {}
    assert_frame_equal(
        result.rejects,
        rejects_frame(path, [("file", "JSON file is neither a Bundle nor a FHIR resource")]),
    )
    with pytest.raises(MalformedRecordError):
        read_fhir(path)


def test_a_missing_path_raises_source_not_found(tmp_path):
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        read_fhir(tmp_path / "absent.ndjson")
    # The batch reader checks the source when called, not at its first batch.
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        iter_fhir_batches(tmp_path / "absent.ndjson")


def test_a_folder_without_fhir_files_raises_source_not_found(tmp_path):
    (tmp_path / "notes.txt").write_text("not FHIR", encoding="utf-8")
    (tmp_path / ".hidden.ndjson").write_text("{}", encoding="utf-8")
    with pytest.raises(SourceNotFoundError, match="holds no"):
        read_fhir(tmp_path)


def test_a_file_with_another_extension_raises_unsupported_format(tmp_path):
    path = tmp_path / "patients.csv"
    shutil.copy(TYPED / "Patient.ndjson", path)
    with pytest.raises(UnsupportedFormatError, match="rename the file"):
        read_fhir(path)


def test_bad_arguments_raise_value_error_before_reading():
    with pytest.raises(ValueError, match="on_error"):
        read_fhir(TYPED, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        iter_fhir_batches(TYPED, batch_size=0)


def test_the_garbage_collector_is_restored_after_a_read_even_when_it_raises():
    assert gc.isenabled()
    read_fhir(TYPED)
    assert gc.isenabled()
    with pytest.raises(MalformedRecordError):
        read_fhir(MALFORMED)
    assert gc.isenabled()
    gc.disable()
    try:
        read_fhir(TYPED)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_file_longer_than_one_parse_slice_reads_every_line(tmp_path):
    # The reader parses 10,000 lines at a time; lines on both sides of the cuts must count.
    lines = [f'{{"resourceType":"Organization","id":"org-{n}"}}' for n in range(1, 25_002)]
    lines[10_000 - 1] = "{not json"
    lines[20_000 - 1] = ""
    path = tmp_path / "Organization.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = read_fhir(path, on_error="quarantine")
    organizations = result.tables["other_resources"]
    assert organizations.height == 25_001 - 2
    assert organizations["source_locator"][-1] == "line:25001"
    assert organizations["id"][9_999] == "org-10001"
    assert_frame_equal(
        result.rejects, rejects_frame(path, [("line:10000", "line is not valid JSON")])
    )
