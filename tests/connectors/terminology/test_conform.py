"""conform_lab_results and mapping_report on small frames shaped like the readers' output."""

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.lab_schema import LAB_RESULT_SCHEMA, empty_lab_results
from connectors.terminology.conform import (
    CONFORMED_COLUMNS,
    MAPPING_REPORT_SCHEMA,
    MAPPING_STATUSES,
    UNIT_STATUSES,
    conform_lab_results,
    mapping_report,
)
from connectors.terminology.errors import TerminologyError

A01 = {"site": "SITE-A01", "source_kind": "csv", "test_system": "SITE-A01-LIS"}
B07 = {"site": "SITE-B07", "source_kind": "csv", "test_system": "SITE-B07-LIS"}
D02 = {"site": "SITE-D02", "source_kind": "hl7v2", "test_system": "L"}
A02 = {"site": "SITE-A02", "source_kind": "hl7v2", "test_system": "LN"}
FR = {"site": "LAB-FR", "source_kind": "hl7v2", "test_system": "LN"}


def lab_rows(*rows: dict) -> pl.DataFrame:
    """Rows with every lab_results column; the ones not given are null."""
    filled = [{name: row.get(name) for name in LAB_RESULT_SCHEMA} for row in rows]
    return pl.DataFrame(filled, schema=LAB_RESULT_SCHEMA)


def result(base: dict, code: str, value: float | None, unit: str | None, **more) -> dict:
    return {**base, "test_code": code, "value_number": value, "unit": unit, **more}


SELECTED = [
    "site", "local_code", "source_loinc", "loinc", "analyte", "mapping_status",
    "map_version", "value_original", "unit_original", "value", "unit", "unit_status",
]


def expected(*rows: tuple) -> pl.DataFrame:
    schema = {c.name: c.dtype for c in CONFORMED_COLUMNS}
    return pl.DataFrame(
        rows, schema={name: schema.get(name, pl.String()) for name in SELECTED}, orient="row"
    )


def test_every_mapping_status_and_unit_status():
    frame = lab_rows(
        result(A01, "GLU", 100.0, "mg/dL"),
        result(B07, "1001", 5.0, "mmol/L"),
        result(A02, "2345-7", 100.0, "mg/dl", alt_code="GLU", alt_system="L"),
        result(D02, "GLUC", 100.0, "mg/dL", alt_code="2345-7", alt_system="LN"),
        result(A02, "2345-8", 30.0, "mg/dL"),
        result(A01, "VITD25", 30.0, "ng/mL"),
        result(A01, "HBA1C", 7.1, "% Hb"),
        result(FR, "20509-6", 13.4, "g/l-1"),
        result(A01, "NA", None, "mEq/L", value_text="hemolysed"),
        result(A01, "WBC", 7.0, None),
        result(B07, "1020", 53.0, "mmol/mol"),
        result(A01, "NA", 140.0, "mEq/L"),
        result({**FR, "test_system": "http://loinc.org"}, "8867-4", 72.0, "bpm"),
        result({"site": "SITE-C03", "source_kind": "hl7v2", "test_system": "L"}, "XYZ",
               1.0, "mg/dL"),
    )
    out = conform_lab_results(frame)
    v = "2026.09.1"
    assert_frame_equal(
        out.select(SELECTED),
        expected(
            ("SITE-A01", "GLU", "2345-7", "2345-7", "glucose", "mapped", v, 100.0, "mg/dL",
             100.0, "mg/dL", "canonical"),
            ("SITE-B07", "1001", "14749-6", "2345-7", "glucose", "mapped", v, 5.0, "mmol/L",
             5.0 * 18.0156, "mg/dL", "converted"),
            ("SITE-A02", "GLU", "2345-7", "2345-7", "glucose", "loinc_reported", None, 100.0,
             "mg/dl", 100.0, "mg/dL", "canonical"),
            ("SITE-D02", "GLUC", "2345-7", "2345-7", "glucose", "loinc_reported", None, 100.0,
             "mg/dL", 100.0, "mg/dL", "canonical"),
            ("SITE-A02", None, "2345-8", None, None, "invalid_loinc", None, 30.0, "mg/dL",
             30.0, "mg/dL", "no_canonical"),
            ("SITE-A01", "VITD25", None, None, None, "unmapped", v, 30.0, "ng/mL", 30.0,
             "ng/mL", "no_canonical"),
            ("SITE-A01", "HBA1C", "4548-4", "4548-4", "hba1c", "mapped", v, 7.1, "% Hb",
             None, None, "unknown_unit"),
            ("LAB-FR", None, "20509-6", "718-7", "haemoglobin", "loinc_reported", None, 13.4,
             "g/l-1", None, None, "unconvertible"),
            ("SITE-A01", "NA", "2951-2", "2951-2", "sodium", "mapped", v, None, "mEq/L", None,
             "mmol/L", "not_numeric"),
            ("SITE-A01", "WBC", "6690-2", "6690-2", "wbc", "mapped", v, 7.0, None, None, None,
             "no_unit"),
            ("SITE-B07", "1020", "59261-8", "4548-4", "hba1c", "mapped", v, 53.0, "mmol/mol",
             0.09148 * 53 + 2.152, "%", "converted"),
            ("SITE-A01", "NA", "2951-2", "2951-2", "sodium", "mapped", v, 140.0, "mEq/L",
             140.0, "mmol/L", "converted"),
            ("LAB-FR", None, "8867-4", "8867-4", None, "loinc_reported", None, 72.0, "bpm",
             72.0, "/min", "no_canonical"),
            ("SITE-C03", "XYZ", None, None, None, "unmapped", None, 1.0, "mg/dL", 1.0,
             "mg/dL", "no_canonical"),
        ),
        rel_tol=1e-12,
    )
    assert set(out["mapping_status"]) == set(MAPPING_STATUSES)
    assert set(out["unit_status"]) == set(UNIT_STATUSES)


def test_local_code_and_displays_come_from_the_right_component():
    frame = lab_rows(
        result(A02, "2345-7", 100.0, "mg/dL", test_display="Glucose SerPl-mCnc",
               alt_code="GLU", alt_system="L", alt_display="GLUCOSE"),
        result(D02, "GLUC", 100.0, "mg/dL", test_display="Glucose",
               alt_code="2345-7", alt_system="LN", alt_display="Glucose SerPl-mCnc"),
        result(A01, "VITD25", 30.0, "ng/mL", test_display="Vitamin D 25-OH"),
        result(FR, "8867-4", 72.0, "/min", test_display="heartrate"),
    )
    out = conform_lab_results(frame).select(
        "local_code", "local_system", "local_display", "loinc_display"
    )
    assert out.rows() == [
        ("GLU", "L", "GLUCOSE", "Glucose [Mass/volume] in Serum or Plasma"),
        ("GLUC", "L", "Glucose", "Glucose [Mass/volume] in Serum or Plasma"),
        ("VITD25", "SITE-A01-LIS", "Vitamin D 25-OH", "Vitamin D 25-OH"),
        (None, None, None, "heartrate"),
    ]


def test_the_same_glucose_from_three_feeds_ends_in_one_code_unit_and_value():
    frame = lab_rows(
        result(A01, "GLU", 100.0, "mg/dL"),
        result(B07, "1001", 100.0 / 18.0156, "mmol/L"),
        result(A02, "2345-7", 100.0, "mg/dL", alt_code="GLU", alt_system="L"),
        result(D02, "GLUC", 100.0, "mg/dL"),
    )
    out = conform_lab_results(frame)
    assert out.select("loinc", "unit", "analyte").unique().rows() == [
        ("2345-7", "mg/dL", "glucose")
    ]
    assert out["value"].to_list() == pytest.approx([100.0] * 4, rel=1e-12)
    assert out["mapping_status"].to_list() == ["mapped", "mapped", "loinc_reported", "mapped"]


# (canonical LOINC, canonical unit, canonical value, [(site base, code, unit, value sent)]):
# the contract's synthetic analytes, each from every site, with published factors.
SYNTHETIC = [
    ("2345-7", "mg/dL", 99.0, [(A01, "GLU", "mg/dL", 99.0), (B07, "1001", "mmol/L", 99 * 0.0555),
                               (D02, "GLUC", "mg/dL", 99.0)]),
    ("2160-0", "mg/dL", 1.1, [(A01, "CREA", "mg/dL", 1.1), (B07, "1002", "\u00b5mol/L", 1.1 * 88.4),
                              (D02, "CREAT", "mg/dL", 1.1)]),
    ("2093-3", "mg/dL", 200.0, [(A01, "CHOL", "mg/dL", 200.0),
                                (B07, "1003", "mmol/L", 200 * 0.02586)]),
    ("2085-9", "mg/dL", 50.0, [(D02, "HDLC", "mg/dL", 50.0),
                               (B07, "1004", "mmol/L", 50 * 0.02586)]),
    ("2571-8", "mg/dL", 150.0, [(A01, "TRIG", "mg/dL", 150.0),
                                (B07, "1005", "mmol/L", 150 * 0.01129)]),
    ("718-7", "g/dL", 13.5, [(A01, "HGB", "g/dL", 13.5), (B07, "1010", "g/L", 135.0)]),
    ("4548-4", "%", 7.0, [(A01, "HBA1C", "%", 7.0), (D02, "A1C", "%", 7.0),
                          (B07, "1020", "mmol/mol", (7.0 - 2.152) / 0.09148)]),
    ("2951-2", "mmol/L", 140.0, [(A01, "NA", "mEq/L", 140.0), (B07, "1030", "mmol/L", 140.0),
                                 (D02, "NA", "mmol/L", 140.0)]),
    ("2823-3", "mmol/L", 4.2, [(A01, "K", "mEq/L", 4.2), (B07, "1031", "mmol/L", 4.2)]),
    ("6690-2", "10*3/uL", 7.2, [(A01, "WBC", "K/uL", 7.2), (B07, "1040", "10^9/L", 7.2),
                                (D02, "WBC", "10*3/uL", 7.2)]),
    ("777-3", "10*3/uL", 250.0, [(A01, "PLT", "K/uL", 250.0), (B07, "1041", "10^9/L", 250.0)]),
    ("1742-6", "U/L", 31.0, [(A01, "ALT", "U/L", 31.0), (B07, "1050", "U/L", 31.0)]),
]


@pytest.mark.parametrize(("loinc", "unit", "value", "sent"), SYNTHETIC, ids=lambda x: str(x))
def test_the_synthetic_analytes_conform_from_every_site(loinc, unit, value, sent):
    frame = lab_rows(*(result(base, code, v, u) for base, code, u, v in sent))
    out = conform_lab_results(frame)
    assert out["loinc"].to_list() == [loinc] * len(sent)
    assert out["unit"].to_list() == [unit] * len(sent)
    assert out["mapping_status"].to_list() == ["mapped"] * len(sent)
    assert out["value"].to_list() == pytest.approx([value] * len(sent), rel=5e-4)


def test_reference_limits_are_converted_like_the_value():
    frame = lab_rows(
        result(B07, "1001", 5.0, "mmol/L", reference_range="3.9-5.5",
               reference_low=3.9, reference_high=5.5),
        result(B07, "1020", 40.0, "mmol/mol", reference_range="<42", reference_high=42.0),
        result(A01, "HBA1C", 7.0, "% Hb", reference_range="4.0-5.6",
               reference_low=4.0, reference_high=5.6),
    )
    out = conform_lab_results(frame)
    assert out["reference_low"].to_list()[0] == pytest.approx(3.9 * 18.0156, rel=1e-12)
    assert out["reference_high"].to_list()[0] == pytest.approx(5.5 * 18.0156, rel=1e-12)
    assert out["reference_low"].to_list()[1] is None
    assert out["reference_high"].to_list()[1] == pytest.approx(
        0.09148 * 42 + 2.152, rel=1e-12
    )
    assert out["reference_low"].to_list()[2] is None  # unit unknown: no limits either
    assert out["reference_text"].to_list() == ["3.9-5.5", "<42", "4.0-5.6"]


def test_input_columns_pass_through_in_order_with_the_conformed_ones_after():
    frame = lab_rows(
        result(A01, "GLU", 100.0, "mg/dL", accession="A1"),
        result(B07, "1001", 5.0, "mmol/L", accession="B1"),
    ).with_columns(pl.Series("source_file", ["a.csv", "b.csv"]))
    out = conform_lab_results(frame)
    added = [c.name for c in CONFORMED_COLUMNS if c.name not in frame.columns]
    assert out.columns == [*frame.columns, *added]
    assert out["accession"].to_list() == ["A1", "B1"]
    assert out["source_file"].to_list() == ["a.csv", "b.csv"]
    assert out["unit"].to_list() == ["mg/dL", "mg/dL"]  # replaced in place
    assert out["unit_original"].to_list() == ["mg/dL", "mmol/L"]
    for column in CONFORMED_COLUMNS:
        assert out.schema[column.name] == column.dtype, column.name


def test_row_order_survives_many_groups():
    bases = [(A01, "GLU", "mg/dL"), (B07, "1001", "mmol/L"), (A01, "VITD25", "ng/mL"),
             (B07, "1031", "mval/l"), (D02, "FERR", "ng/mL")]
    rows = [result(b, c, float(i), u, accession=str(i))
            for i in range(300) for b, c, u in [bases[i % len(bases)]]]
    out = conform_lab_results(lab_rows(*rows))
    assert out["accession"].to_list() == [str(i) for i in range(300)]
    assert out["value_original"].to_list() == [float(i) for i in range(300)]


def test_an_empty_frame_conforms_to_an_empty_frame():
    out = conform_lab_results(empty_lab_results())
    assert out.height == 0
    for column in CONFORMED_COLUMNS:
        assert out.schema[column.name] == column.dtype
    assert_frame_equal(mapping_report(out), pl.DataFrame(schema=MAPPING_REPORT_SCHEMA))


def test_missing_columns_are_named():
    with pytest.raises(TerminologyError, match="missing: .*test_system"):
        conform_lab_results(lab_rows(result(A01, "GLU", 1.0, "mg/dL")).drop("test_system"))
    with pytest.raises(TerminologyError, match="missing: .*unit_status"):
        mapping_report(lab_rows(result(A01, "GLU", 1.0, "mg/dL")))


def test_a_map_may_name_a_loinc_the_analyte_table_lacks(tmp_path):
    (tmp_path / "SITE-T01.yaml").write_text(
        'site: SITE-T01\nversion: "2026.10.2"\ncode_system: T\ncodes:\n'
        '  HR: {loinc: "8867-4", display: "Heart rate"}\n',
        encoding="utf-8",
    )
    base = {"site": "SITE-T01", "source_kind": "csv", "test_system": "T"}
    out = conform_lab_results(
        lab_rows(result(base, "HR", 60.0, "/min"), result(base, "BP", 1.0, "mm[Hg]")),
        maps_directory=tmp_path,
    )
    assert out.select("loinc", "loinc_display", "mapping_status", "map_version").rows() == [
        ("8867-4", "Heart rate", "mapped", "2026.10.2"),
        (None, None, "unmapped", "2026.10.2"),
    ]


def test_the_real_lab_oru_units_conform_honestly():
    # LAB-ORU-2 sends haemoglobin in 'g/l-1' (UCUM for gram-litre) and counts under
    # morphology codes; neither is converted into something it is not.
    frame = lab_rows(
        result(FR, "20509-6", 13.4, "g/l-1"),
        result(FR, "11156-7", 8.2, "giga.l-1"),
        result(FR, "11273-0", 4.08, "tera.l-1"),
        result(FR, "20570-8", 39.7, "%"),
        result(FR, "26453-1", 4.41, "10*6/uL"),
        result(FR, "26464-8", 105600.0, "{cells}/uL"),
    )
    out = conform_lab_results(frame).select("loinc", "analyte", "value", "unit", "unit_status")
    assert out.rows() == [
        ("718-7", "haemoglobin", None, None, "unconvertible"),
        ("11156-7", "leukocyte_morphology", 8.2, "10*9/L", "no_canonical"),
        ("11273-0", None, 4.08, "10*12/L", "no_canonical"),
        ("4544-3", "haematocrit", 39.7, "%", "canonical"),
        ("789-8", "rbc", 4.41, "10*6/uL", "canonical"),
        ("6690-2", "wbc", pytest.approx(105.6, rel=1e-12), "10*3/uL", "converted"),
    ]


def test_mapping_report_counts_each_issue_per_site_code_and_unit():
    frame = lab_rows(
        result(A01, "GLU", 100.0, "mg/dL"),
        result(A01, "VITD25", 30.0, "ng/mL", test_display="Vitamin D"),
        result(A01, "VITD25", 31.0, "ng/mL", test_display="Vitamin D"),
        result(A01, "HBA1C", 7.1, "% Hb", test_display="HbA1c"),
        result(A01, "HBA1C", 6.1, "% Hb", test_display="HbA1c"),
        result(A01, "HBA1C", 6.1, "%", test_display="HbA1c"),
        result(B07, "1099", 80.0, "\u00b5g/L", test_display="Ferritin"),
        result(B07, "1031", 4.0, "mval/l", test_display="Kalium"),
        result(D02, "FERR", 80.0, "ng/mL", test_display="Ferritin"),
        result(D02, "FERR", 81.0, "ng/mL", test_display="Ferritin"),
        result(D02, "FERR", 82.0, "ug/L", test_display="Ferritin"),
        result(D02, "GLUC", 99.0, "mg%", test_display="Glucose"),
        result(A02, "2345-8", 99.0, "mg/dL", test_display="Glucose SerPl"),
        result(A02, "2345-7", 99.0, "mg/dL", alt_code="GLU", alt_system="L"),
        result(FR, "20509-6", 13.4, "g/l-1", test_display="HEMOGLOBIN"),
        result(FR, "20509-6", 13.5, "g/l-1", test_display="HEMOGLOBIN"),
    )
    report = mapping_report(conform_lab_results(frame))
    v = "2026.09.1"
    assert_frame_equal(
        report,
        pl.DataFrame(
            [
                ("LAB-FR", "hl7v2", None, "unconvertible_unit", "20509-6", "LN", "HEMOGLOBIN",
                 "g/l-1", "haemoglobin", 2),
                ("SITE-A01", "csv", v, "unknown_unit", "HBA1C", "SITE-A01-LIS", "HbA1c",
                 "% Hb", "hba1c", 2),
                ("SITE-A01", "csv", v, "unmapped_code", "VITD25", "SITE-A01-LIS", "Vitamin D",
                 "ng/mL", None, 2),
                ("SITE-A02", "hl7v2", None, "invalid_loinc", "2345-8", "LN", "Glucose SerPl",
                 "mg/dL", None, 1),
                ("SITE-B07", "csv", v, "unknown_unit", "1031", "SITE-B07-LIS", "Kalium",
                 "mval/l", "potassium", 1),
                ("SITE-B07", "csv", v, "unmapped_code", "1099", "SITE-B07-LIS", "Ferritin",
                 "\u00b5g/L", None, 1),
                ("SITE-D02", "hl7v2", v, "unknown_unit", "GLUC", "L", "Glucose", "mg%",
                 "glucose", 1),
                ("SITE-D02", "hl7v2", v, "unmapped_code", "FERR", "L", "Ferritin", "ng/mL",
                 None, 2),
                ("SITE-D02", "hl7v2", v, "unmapped_code", "FERR", "L", "Ferritin", "ug/L",
                 None, 1),
            ],
            schema=MAPPING_REPORT_SCHEMA,
            orient="row",
        ),
    )
