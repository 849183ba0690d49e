import pytest

from connectors.synth import build_people, write_cohort


def _read_fhir():
    fhir = pytest.importorskip("connectors.fhir", exc_type=ImportError)
    read_fhir = getattr(fhir, "read_fhir", None)
    if read_fhir is None:
        pytest.skip("connectors.fhir has no read_fhir yet")
    return read_fhir


def test_fhir_reader_reads_the_whole_synthetic_export_without_rejects(tmp_path):
    read_fhir = _read_fhir()
    from connectors.fhir.schema import TABLE_NAMES

    summary = write_cohort(tmp_path, patients=200, seed=11)
    result = read_fhir(tmp_path / "ehr", on_error="raise")

    assert result.rejects.height == 0
    for name, count in summary.files.items():
        rtype = name.removeprefix("ehr/").removesuffix(".ndjson")
        assert result.tables[TABLE_NAMES[rtype]].height == count, rtype


def test_fhir_reader_sees_the_roster_identities(tmp_path):
    read_fhir = _read_fhir()

    write_cohort(tmp_path, patients=60, seed=11)
    people = build_people(60, 11)
    patients = read_fhir(tmp_path / "ehr", on_error="raise").tables["patients"]

    assert patients["id"].to_list() == [p.patient_id for p in people]
    assert patients["mrn"].to_list() == [p.mrn for p in people]
    assert patients["postal_code"].to_list() == [p.address.postal_code for p in people]
    # The reader may leave ``deceased`` null for "not recorded"; only the dead must be True.
    dead = [flag is True for flag in patients["deceased"].to_list()]
    assert dead == [p.deceased_date is not None for p in people]
    assert any(dead)
