import csv
import io
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.synth import build_people, write_cohort
from connectors.synth import codes as c
from connectors.synth.cohort import AS_OF
from connectors.synth.ehr import chronic_conditions, ehr_record
from connectors.synth.lab import (
    ANALYTES,
    BELOW_LIMIT,
    CSV_FILES,
    CSV_HEADERS,
    CSV_SITES,
    DELIBERATE,
    HBA1C_NGSP_PER_IFCC,
    HL7_FILES,
    HL7_SITES,
    LIMITS,
    MALFORMED_FILE,
    MALFORMED_MESSAGE_ID,
    MIN_LAB_PEOPLE_PER_SITE,
    PENDING_ROWS,
    SITE_TESTS,
    TRUTH_SCHEMA,
    UNKNOWN_UNITS,
    UNMAPPED_CODES,
    WINDOW_START,
    lab_truth,
    write_lab,
)

PATIENTS = 160
SEED = 7
ZONES = {"SITE-A01": ZoneInfo("America/New_York"), "SITE-B07": ZoneInfo("America/Denver")}
HL7_TIME = re.compile(r"^(\d{12}|\d{14})([+-]\d{4})$")


@pytest.fixture(scope="module")
def people():
    return build_people(PATIENTS, SEED)


@pytest.fixture(scope="module")
def written(tmp_path_factory, people):
    out = tmp_path_factory.mktemp("cohort")
    return out, write_lab(people, out)


@pytest.fixture(scope="module")
def truth(people):
    return lab_truth(people)


# --- helpers ------------------------------------------------------------------------------


def _csv_rows(out: Path, site: str) -> list[dict[str, str]]:
    encoding, delimiter = ("utf-8", ",") if site == "SITE-A01" else ("cp1252", ";")
    rows = []
    for name in CSV_FILES[site]:
        text = (out / "lab" / "csv" / site / name).read_bytes().decode(encoding)
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        assert tuple(reader.fieldnames or ()) == CSV_HEADERS[site]
        rows += [{**row, "_file": f"lab/csv/{site}/{name}"} for row in reader]
    return rows


def _messages(out: Path, site: str) -> list[list[list[str]]]:
    """Messages of a site's HL7 file as lists of segments split into fields."""
    data = (out / "lab" / "hl7" / HL7_FILES[site]).read_bytes()
    if site == "SITE-A02":
        assert data.startswith(b"\x0b") and data.endswith(b"\x1c\r")
        blocks = [block.removeprefix(b"\x0b") for block in data.split(b"\x1c\r")[:-1]]
        assert all(b"\x0b" not in block and b"\n" not in block for block in blocks)
        text = [block.decode("utf-8") for block in blocks]
        segments = [[s for s in block.split("\r") if s] for block in text]
    else:
        if site == "SITE-D02":
            assert data.startswith(b"\xef\xbb\xbf") and b"\r" not in data
            lines = data[3:].decode("utf-8").split("\n")
        else:
            assert b"\n" not in data and b"\x0b" not in data
            lines = data.decode("utf-8").split("\r")
        assert lines[-1] == ""
        segments = []
        for line in lines[:-1]:
            if line.startswith("MSH|"):
                segments.append([])
            segments[-1].append(line)
    return [[segment.split("|") for segment in message] for message in segments]


def _unescape(text: str) -> str:
    replacements = {"\\F\\": "|", "\\S\\": "^", "\\T\\": "&", "\\R\\": "~", "\\E\\": "\\"}
    return re.sub(r"\\[FSTRE]\\", lambda m: replacements[m.group(0)], text)


def _hl7_time(text: str) -> datetime:
    match = HL7_TIME.match(text)
    assert match, text
    stamp, offset = match.groups()
    naive = datetime.strptime(stamp[:12], "%Y%m%d%H%M")
    hours = int(offset[:3])
    return (naive - timedelta(hours=hours)).replace(tzinfo=UTC)


def _field(segment: list[str], number: int) -> str:
    """HL7 field N of a segment (MSH counts its field separator as MSH-1)."""
    if segment[0] == "MSH":
        if number == 1:
            return "|"
        number -= 1
    return segment[number] if number < len(segment) else ""


def _by_type(message: list[list[str]], kind: str) -> list[list[str]]:
    return [segment for segment in message if segment[0] == kind]


# --- files -------------------------------------------------------------------------------


def test_writes_the_landing_layout_and_counts_rows_and_messages(written, people, truth):
    out, counts = written
    expected = [
        *(f"lab/csv/{site}/{name}" for site in CSV_SITES for name in CSV_FILES[site]),
        *(f"lab/hl7/{HL7_FILES[site]}" for site in HL7_SITES),
        "lab/patient_index.csv",
    ]
    assert list(counts) == expected
    assert sorted(str(p.relative_to(out)) for p in (out / "lab").rglob("*") if p.is_file()) == (
        sorted(expected)
    )
    for site in CSV_SITES:
        rows = _csv_rows(out, site)
        per_file = Counter(row["_file"] for row in rows)
        assert {name: counts[name] for name in per_file} == dict(per_file)
    for site in HL7_SITES:
        assert counts[f"lab/hl7/{HL7_FILES[site]}"] == len(_messages(out, site))
    lab_people = truth.select("person_index").unique().height
    assert counts["lab/patient_index.csv"] == lab_people
    assert 0.7 * len(people) < lab_people < 0.95 * len(people)


def test_same_seed_gives_byte_identical_files(tmp_path, people):
    write_lab(people, tmp_path / "a")
    write_lab(build_people(PATIENTS, SEED), tmp_path / "b")
    first = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*.*")}
    second = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*.*")}
    assert first == second
    assert len(first) == 8


def test_a_persons_results_do_not_depend_on_the_cohort_size(truth):
    small = lab_truth(build_people(50, SEED))
    large = truth.filter(pl.col("person_index") < 50)
    key = ["site", "accession", "test_code"]
    assert_frame_equal(small.sort(key), large.sort(key))
    assert small.height > 500


def test_csv_exports_use_each_sites_encoding_delimiter_and_line_ends(written):
    out, _ = written
    for site in CSV_SITES:
        for name in CSV_FILES[site]:
            data = (out / "lab" / "csv" / site / name).read_bytes()
            if site == "SITE-A01":
                data.decode("utf-8")
                assert b"\r" not in data
            else:
                # µmol/L is one cp1252 byte, which is not UTF-8.
                assert "µmol/L".encode("cp1252") in data
                with pytest.raises(UnicodeDecodeError):
                    data.decode("utf-8")
                assert data.count(b"\r\n") == data.count(b"\n")
    a01 = pl.read_csv(out / "lab/csv/SITE-A01" / CSV_FILES["SITE-A01"][0], infer_schema=False)
    assert a01.columns == list(CSV_HEADERS["SITE-A01"])
    b07 = pl.read_csv(
        out / "lab/csv/SITE-B07" / CSV_FILES["SITE-B07"][1],
        separator=";",
        encoding="windows-1252",
        infer_schema=False,
    )
    assert b07.columns == list(CSV_HEADERS["SITE-B07"])


def test_csv_files_split_by_collection_year(written):
    out, _ = written
    for site in CSV_SITES:
        first, second = CSV_FILES[site]
        column = "COLLECTED" if site == "SITE-A01" else "CollectionDateTime"
        fmt = "%Y-%m-%d %H:%M" if site == "SITE-A01" else "%m/%d/%Y %H:%M"
        for row in _csv_rows(out, site):
            year = datetime.strptime(row[column], fmt).year
            assert row["_file"].endswith(first if year < 2024 else second)


def test_csv_rows_are_what_the_ground_truth_says(written, truth):
    out, _ = written
    for site in CSV_SITES:
        rows = _csv_rows(out, site)
        expected = truth.filter(pl.col("site") == site)
        assert len(rows) == expected.height
        a01 = site == "SITE-A01"
        fmt = "%Y-%m-%d %H:%M" if a01 else "%m/%d/%Y %H:%M"
        for row, want in zip(rows, expected.iter_rows(named=True), strict=True):
            value = row["RESULT" if a01 else "Value"]
            collected = datetime.strptime(row["COLLECTED" if a01 else "CollectionDateTime"], fmt)
            collected_utc = collected.replace(tzinfo=ZONES[site]).astimezone(UTC)
            assert row["_file"] == want["file"]
            assert row["MRN" if a01 else "PatientID"] == want["lab_patient_id"]
            assert row["ACCESSION" if a01 else "SpecimenNo"] == want["accession"]
            assert row["TEST_CODE" if a01 else "TestID"] == want["test_code"]
            assert row["UNITS" if a01 else "Unit"] == want["unit_written"]
            assert collected_utc == want["collected_at"]
            if want["value_written"] is None:
                assert value == ""
            else:
                assert float(value.lstrip("<")) == want["value_written"]
                assert value.startswith("<") == (want["comparator"] == "<")
            resulted = row["RESULTED" if a01 else "VerifiedDateTime"]
            if want["resulted_at"] is None:
                assert resulted == ""
            else:
                moment = datetime.strptime(resulted, fmt).replace(tzinfo=ZONES[site])
                assert moment.astimezone(UTC) == want["resulted_at"]
            assert (row["FLAG" if a01 else "AbnFlag"] or None) == want["abnormal_flag"]


def test_hl7_files_are_framed_and_separated_as_each_site_sends_them(written):
    out, _ = written
    for site in HL7_SITES:
        messages = _messages(out, site)
        assert messages
        for message in messages:
            kinds = [segment[0] for segment in message]
            assert kinds[:4] == ["MSH", "PID", "ORC", "OBR"]
            assert kinds[-1] == "SPM"
            assert set(kinds[4:-1]) == {"OBX"}


def test_hl7_headers_identify_site_type_version_and_unique_control_ids(written, people):
    out, _ = written
    lab_ids = {p.lab_mrn: p for p in people}
    for site in HL7_SITES:
        control_ids = []
        for message in _messages(out, site):
            msh, pid = message[0], message[1]
            assert _field(msh, 1) == "|" and _field(msh, 2) == "^~\\&"
            assert _field(msh, 4) == site
            assert _field(msh, 9) == "ORU^R01^ORU_R01"
            assert _field(msh, 12) == "2.5.1"
            _hl7_time(_field(msh, 7))
            control_ids.append(_field(msh, 10))
            identifier, _, _, authority, kind = _field(pid, 3).split("^")
            assert (authority, kind) == (f"{site}-LIS", "MR")
            person = lab_ids[identifier]
            assert person.home_site == site
            assert _field(pid, 5).split("^")[0] == person.family_name
            assert _field(pid, 7) == f"{person.birth_date:%Y%m%d}"
        assert len(control_ids) == len(set(control_ids))


def test_hl7_observations_are_coded_timed_and_flagged(written):
    out, _ = written
    for site in HL7_SITES:
        for message in _messages(out, site):
            obr = _by_type(message, "OBR")[0]
            spm = _by_type(message, "SPM")[0]
            collected = _hl7_time(_field(obr, 7))
            reported = _hl7_time(_field(obr, 22))
            assert reported > collected
            assert _field(obr, 3) == _field(spm, 2)
            assert _field(spm, 4).split("^")[2] == "HL70487"
            assert _field(spm, 17) == _field(obr, 7)
            for set_id, obx in enumerate(_by_type(message, "OBX"), start=1):
                assert _field(obx, 1) == str(set_id)
                observation = _field(obx, 3).split("^")
                if site == "SITE-D02":
                    assert len(observation) == 3 and observation[2] == "L"
                else:
                    assert observation[2] == "LN"
                    assert len(observation) in (3, 6)
                assert _field(obx, 11) == _field(obr, 25)
                assert _field(obx, 14) == _field(obr, 7)
                assert _hl7_time(_field(obx, 19)) == reported
                if _field(obx, 2) == "NM":
                    unit = _field(obx, 6)
                    assert unit.endswith("^^UCUM") or unit == UNKNOWN_UNITS["SITE-D02"][1]
                    assert _field(obx, 8) in ("N", "H", "L")


def test_hl7_results_are_what_the_ground_truth_says_with_the_final_version_winning(
    written, truth
):
    out, _ = written
    for site in HL7_SITES:
        final: dict[tuple[str, str], dict] = {}
        seen_preliminary: set[str] = set()
        for message in _messages(out, site):
            control_id = _field(message[0], 10)
            if control_id == MALFORMED_MESSAGE_ID:
                continue
            obr = _by_type(message, "OBR")[0]
            accession = _field(obr, 3)
            status = _field(obr, 25)
            if status == "P":
                seen_preliminary.add(accession)
            else:
                assert status == "F"
            for obx in _by_type(message, "OBX"):
                key = (accession, _field(obx, 3).split("^")[0])
                if status == "F":
                    final[key] = {
                        "message_id": control_id,
                        "value_text": _unescape(_field(obx, 5)),
                        "unit": _field(obx, 6).split("^")[0] or None,
                        "flag": _field(obx, 8) or None,
                        "collected_at": _hl7_time(_field(obx, 14)),
                        "resulted_at": _hl7_time(_field(obx, 19)),
                    }
                else:
                    assert key not in final, "a preliminary result follows its final one"
        expected = truth.filter(pl.col("site") == site)
        assert len(final) == expected.height
        for want in expected.iter_rows(named=True):
            got = final[(want["accession"], want["test_code"])]
            assert got["message_id"] == want["message_id"]
            assert got["value_text"] == want["value_text"]
            assert got["unit"] == want["unit_written"]
            assert got["flag"] == want["abnormal_flag"]
            assert got["collected_at"] == want["collected_at"]
            assert got["resulted_at"] == want["resulted_at"]
            if want["value_written"] is not None:
                assert float(got["value_text"]) == want["value_written"]
        corrected = expected.filter(pl.col("deliberate") == "corrected")
        assert set(corrected["accession"]) == seen_preliminary


def test_corrected_orders_change_exactly_one_value(truth):
    for site in HL7_SITES:
        corrected = truth.filter((pl.col("site") == site) & (pl.col("deliberate") == "corrected"))
        assert corrected["accession"].n_unique() == DELIBERATE[site].get("corrected", 0)
        changed = corrected.filter(
            pl.col("superseded_value_written") != pl.col("value_written")
        )
        assert sorted(changed["accession"]) == sorted(corrected["accession"].unique())


def test_text_results_carry_hl7_escape_sequences(written, truth):
    out, _ = written
    raw_comments = [
        _field(obx, 5)
        for site in ("SITE-A02", "SITE-C03")
        for message in _messages(out, site)
        for obx in _by_type(message, "OBX")
        if _field(obx, 2) == "ST"
    ]
    assert len(raw_comments) == DELIBERATE["SITE-A02"]["comment"] + (
        DELIBERATE["SITE-C03"]["comment"]
    )
    assert all(re.search(r"\\[FST]\\", text) for text in raw_comments)
    assert not any(set(text) & set("&^~|") for text in raw_comments)
    texts = truth.filter(pl.col("value_type") == "ST")["value_text"].to_list()
    assert sorted(texts) == sorted(_unescape(text) for text in raw_comments)


def test_urine_cultures_are_coded_with_snomed_organisms(truth):
    cultures = truth.filter(pl.col("value_type") == "CWE")
    assert cultures.height == sum(DELIBERATE[s].get("coded", 0) for s in HL7_SITES)
    assert set(cultures["test_code"]) == {"630-4"}
    assert set(cultures["value_system"]) == {"SCT"}
    for row in cultures.iter_rows(named=True):
        assert row["value_text"] == f"{row['value_code']}^{row['value_display']}^SCT"
        assert row["abnormal_flag"] == ("N" if row["value_display"] == "No growth" else "A")
        assert row["value"] is None and row["unit"] is None


def test_exactly_one_message_is_malformed(written):
    out, _ = written
    bad = []
    for site in HL7_SITES:
        for message in _messages(out, site):
            for obx in _by_type(message, "OBX"):
                if _field(obx, 2) != "NM":
                    continue
                try:
                    float(_field(obx, 5))
                except ValueError:
                    bad.append((f"lab/hl7/{HL7_FILES[site]}", _field(message[0], 10)))
    assert bad == [(MALFORMED_FILE, MALFORMED_MESSAGE_ID)]


def test_deliberate_gaps_come_in_the_stated_numbers(written, truth):
    out, _ = written
    for site, plan in DELIBERATE.items():
        rows = truth.filter(pl.col("site") == site)
        assert rows["person_index"].n_unique() >= MIN_LAB_PEOPLE_PER_SITE
        for kind in ("unmapped_code", "unknown_unit", "below_limit"):
            assert rows.filter(pl.col("deliberate") == kind).height == plan.get(kind, 0), kind
    a01 = _csv_rows(out, "SITE-A01")
    b07 = _csv_rows(out, "SITE-B07")
    assert sum(r["TEST_CODE"] == UNMAPPED_CODES["SITE-A01"][0] for r in a01) == 3
    assert sum(r["TestID"] == UNMAPPED_CODES["SITE-B07"][0] for r in b07) == 3
    assert sum(r["UNITS"] == UNKNOWN_UNITS["SITE-A01"][1] for r in a01) == 3
    assert sum(r["Unit"] == UNKNOWN_UNITS["SITE-B07"][1] for r in b07) == 3
    assert [r["RESULT"] for r in a01 if r["RESULT"].startswith("<")] == [
        BELOW_LIMIT["SITE-A01"][1]
    ] * DELIBERATE["SITE-A01"]["below_limit"]
    assert [r["Value"] for r in b07 if r["Value"].startswith("<")] == [
        BELOW_LIMIT["SITE-B07"][1]
    ] * DELIBERATE["SITE-B07"]["below_limit"]
    d02 = [
        _field(obx, 3).split("^")[0] + "|" + _field(obx, 6)
        for message in _messages(out, "SITE-D02")
        for obx in _by_type(message, "OBX")
    ]
    assert sum(code.startswith(UNMAPPED_CODES["SITE-D02"][0] + "|") for code in d02) == 3
    assert d02.count(f"{UNKNOWN_UNITS['SITE-D02'][0]}|{UNKNOWN_UNITS['SITE-D02'][1]}") == 3
    unmapped = truth.filter(pl.col("deliberate") == "unmapped_code")
    assert unmapped["loinc"].null_count() == unmapped.height
    assert (unmapped["value"] == unmapped["value_written"]).all()


def test_each_csv_site_has_one_pending_row_with_a_blank_value(written, people):
    out, _ = written
    alive = {p.lab_mrn for p in people if p.deceased_date is None}
    a01 = [r for r in _csv_rows(out, "SITE-A01") if r["STATUS"] not in ("F", "C")]
    b07 = [r for r in _csv_rows(out, "SITE-B07") if r["ResultStatus"] not in ("Final", "Corrected")]
    assert len(a01) == len(b07) == PENDING_ROWS
    assert (a01[0]["STATUS"], a01[0]["RESULT"], a01[0]["RESULTED"]) == ("I", "", "")
    assert (b07[0]["ResultStatus"], b07[0]["Value"], b07[0]["VerifiedDateTime"]) == (
        "Pending", "", ""
    )
    assert a01[0]["MRN"] in alive and b07[0]["PatientID"] in alive


def test_results_come_after_collection_inside_the_window_and_the_persons_life(truth, people):
    by_index = {p.index: p for p in people}
    timed = truth.filter(pl.col("resulted_at").is_not_null())
    assert (timed["resulted_at"] > timed["collected_at"]).all()
    for row in truth.select("person_index", "collected_at").iter_rows():
        person = by_index[row[0]]
        day = row[1].date()
        assert max(WINDOW_START, person.birth_date) <= day <= person.end_date
    adults = [
        by_index[i].age_on(AS_OF) >= 18 for i in truth["person_index"].unique().to_list()
    ]
    assert sum(adults) / len(adults) > 0.85


def test_values_are_plausible_and_flags_agree_with_the_written_range(truth):
    numeric = truth.filter(
        pl.col("value").is_not_null()
        & pl.col("loinc").is_not_null()
        & pl.col("comparator").is_null()
    )
    by_loinc = {a.loinc: key for key, a in ANALYTES.items()}
    for row in numeric.iter_rows(named=True):
        low, high = LIMITS[by_loinc[row["loinc"]]]
        assert low * 0.97 <= row["value"] <= high * 1.03, row
    checked = truth.filter(
        pl.col("value_written").is_not_null()
        & (pl.col("value_type") == "NM")
        & pl.col("comparator").is_null()
    )
    for row in checked.iter_rows(named=True):
        value, low, high = row["value_written"], row["reference_low"], row["reference_high"]
        expected = "H" if high is not None and value > high else (
            "L" if low is not None and value < low else None
        )
        flag = None if row["abnormal_flag"] == "N" else row["abnormal_flag"]
        assert flag == expected, row
    assert truth.filter(pl.col("abnormal_flag") == "H").height > 0.05 * numeric.height


def test_values_in_si_units_convert_back_to_the_canonical_value(truth):
    b07 = truth.filter((pl.col("site") == "SITE-B07") & pl.col("value").is_not_null())
    slope, intercept = HBA1C_NGSP_PER_IFCC
    for row in b07.iter_rows(named=True):
        written, value = row["value_written"], row["value"]
        if row["loinc"] == "4548-4":
            assert value == pytest.approx(slope * written + intercept)
        elif row["unit_written"] == "µmol/L":
            assert value == pytest.approx(written * 113.12 / 10_000)
        elif row["unit_written"] == "g/L":
            assert value == pytest.approx(written / 10)
        elif row["loinc"] == "2345-7":
            assert value == pytest.approx(written * 18.0156)
        if row["value_drawn"] is not None and row["deliberate"] is None:
            test = next(t for t in SITE_TESTS["SITE-B07"].values() if t.code == row["test_code"])
            step = 10.0 ** -test.decimals
            assert abs(test.to_site(row["value_drawn"]) - written) <= step / 2 + 1e-9


def test_people_with_diabetes_have_higher_glucose_and_hba1c(truth, people):
    diabetic = {p.index for p in people if c.DIABETES_T2 in chronic_conditions(p)}
    assert diabetic
    means = (
        truth.filter(pl.col("loinc").is_in(["2345-7", "4548-4"]) & pl.col("value").is_not_null())
        .with_columns(pl.col("person_index").is_in(list(diabetic)).alias("diabetic"))
        .group_by("loinc", "diabetic")
        .agg(pl.col("value").mean())
    )
    mean = {(r["loinc"], r["diabetic"]): r["value"] for r in means.iter_rows(named=True)}
    assert mean[("2345-7", True)] > mean[("2345-7", False)] + 25
    assert mean[("4548-4", True)] > mean[("4548-4", False)] + 0.8


def test_chronic_conditions_match_the_ehr_record(people):
    chronic = set(c.CHRONIC_CONDITIONS)
    for person in people[:40]:
        recorded = {
            code
            for resource in ehr_record(person)["Condition"]
            for code in chronic
            if resource["code"]["coding"][0]["code"] == code.code
        }
        assert chronic_conditions(person) == recorded


def test_patient_index_maps_every_lab_patient_to_their_mrn(written, truth, people):
    out, _ = written
    with (out / "lab" / "patient_index.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    indexed = [(r["site"], r["lab_patient_id"], r["mrn"]) for r in rows]
    by_index = {p.index: p for p in people}
    expected = [
        (by_index[i].home_site, by_index[i].lab_mrn, by_index[i].mrn)
        for i in sorted(truth["person_index"].unique().to_list())
    ]
    assert indexed == expected
    assert any(lab_id != mrn for _, lab_id, mrn in indexed)


def test_truth_has_the_documented_columns_and_one_row_per_result(truth):
    assert truth.schema == pl.Schema(TRUTH_SCHEMA)
    key = ["site", "lab_patient_id", "accession", "test_code"]
    assert truth.select(key).is_unique().all()
    assert 10_000 > truth.height > 5_000
    canonical = truth.filter(pl.col("deliberate").is_null() & (pl.col("value_type") == "NM"))
    units = {a.loinc: a.unit for a in ANALYTES.values()}
    assert all(units[loinc] == unit for loinc, unit in canonical.select("loinc", "unit").rows())


def test_write_cohort_writes_lab_and_trials_and_leaves_no_temporary_files(tmp_path):
    summary = write_cohort(tmp_path, patients=30, seed=SEED, silos=("lab", "trials"))
    assert {name.split("/")[0] for name in summary.files} == {"lab", "trials"}
    assert all((tmp_path / name).is_file() for name in summary.files)
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]
    assert not (tmp_path / "ehr").exists()


def test_an_empty_roster_writes_headers_only(tmp_path):
    counts = write_lab([], tmp_path)
    assert set(counts.values()) == {0}
    for site in CSV_SITES:
        for name in CSV_FILES[site]:
            text = (tmp_path / "lab/csv" / site / name).read_bytes().decode("cp1252")
            assert text.splitlines() == [(";" if site == "SITE-B07" else ",").join(
                CSV_HEADERS[site]
            )]
    assert (tmp_path / "lab/hl7/SITE-A02-oru.hl7").read_bytes() == b""
    assert lab_truth([]).schema == pl.Schema(TRUTH_SCHEMA)


def test_a_failed_write_keeps_the_previous_files(tmp_path, people):
    write_lab(people[:20], tmp_path)
    before = {p: p.read_bytes() for p in (tmp_path / "lab").rglob("*") if p.is_file()}

    def roster_that_breaks():
        yield from people[:5]
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_lab(roster_that_breaks(), tmp_path)
    after = {p: p.read_bytes() for p in (tmp_path / "lab").rglob("*") if p.is_file()}
    assert after == before
