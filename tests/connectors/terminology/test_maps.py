"""Site maps: the contract's local codes, deliberate gaps, and strict validation."""

from pathlib import Path

import pytest

from connectors.terminology.analytes import load_analytes
from connectors.terminology.errors import SiteMapError
from connectors.terminology.maps import available_site_maps, load_site_map, read_site_map

# The contract's table "Synthetic analytes and local codes".
EXPECTED = {
    "SITE-A01": {
        "GLU": "2345-7", "CREA": "2160-0", "CHOL": "2093-3", "HDL": "2085-9",
        "TRIG": "2571-8", "HGB": "718-7", "HBA1C": "4548-4", "NA": "2951-2", "K": "2823-3",
        "WBC": "6690-2", "PLT": "777-3", "ALT": "1742-6", "BUN": "3094-0", "CA": "17861-6",
        "ALB": "1751-7",
    },
    "SITE-B07": {
        "1001": "14749-6", "1002": "14682-9", "1003": "14647-2", "1004": "14646-4",
        "1005": "14927-8", "1010": "718-7", "1020": "59261-8", "1030": "2951-2",
        "1031": "2823-3", "1040": "6690-2", "1041": "777-3", "1050": "1742-6",
    },
    "SITE-D02": {
        "GLUC": "2345-7", "CREAT": "2160-0", "CHOL": "2093-3", "HDLC": "2085-9",
        "TRIG": "2571-8", "HGB": "718-7", "A1C": "4548-4", "NA": "2951-2", "K": "2823-3",
        "WBC": "6690-2", "PLT": "777-3", "ALT": "1742-6",
    },
}
DELIBERATELY_UNMAPPED = {"SITE-A01": "VITD25", "SITE-B07": "1099", "SITE-D02": "FERR"}


def test_the_packaged_maps_are_the_contract_sites():
    assert available_site_maps() == sorted(EXPECTED)


@pytest.mark.parametrize("site", sorted(EXPECTED))
def test_each_map_gives_the_contract_codes(site):
    site_map = load_site_map(site)
    assert site_map is not None
    assert site_map.site == site
    assert site_map.version == "2026.09.1"
    assert {code: m.loinc for code, m in site_map.codes.items()} == EXPECTED[site]
    assert DELIBERATELY_UNMAPPED[site] not in site_map.codes
    assert site_map.loinc_for(DELIBERATELY_UNMAPPED[site]) is None


@pytest.mark.parametrize("site", sorted(EXPECTED))
def test_map_displays_are_the_analyte_tables_displays(site):
    analytes = load_analytes()
    for code, mapped in load_site_map(site).codes.items():
        assert mapped.display == analytes[mapped.loinc].display, (site, code)


def test_a_map_is_read_only():
    with pytest.raises(TypeError):
        load_site_map("SITE-B07").codes["1099"] = None  # type: ignore[index]


@pytest.mark.parametrize("site", ["SITE-A02", "SITE-C03", "NOWHERE"])
def test_a_site_without_a_map_gets_none(site):
    assert load_site_map(site) is None


@pytest.mark.parametrize("site", ["../maps/SITE-A01", "SITE A01", "", "-SITE"])
def test_a_site_code_that_cannot_name_a_file_is_refused(site):
    with pytest.raises(SiteMapError, match="letters, digits"):
        load_site_map(site)


GOOD = """site: SITE-T01
version: "2026.09.1"
code_system: T
codes:
  "1001": {loinc: "14749-6", display: "Glucose [Moles/volume] in Serum or Plasma"}
"""


def _write(tmp_path: Path, text: str, name: str = "SITE-T01") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_map_reads_from_another_folder(tmp_path):
    _write(tmp_path, GOOD)
    site_map = load_site_map("SITE-T01", directory=tmp_path)
    assert site_map is not None
    assert (site_map.version, site_map.code_system) == ("2026.09.1", "T")
    assert site_map.loinc_for("1001") == "14749-6"
    assert available_site_maps(directory=tmp_path) == ["SITE-T01"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("14749-6", "14749-7"), "invalid LOINC"),
        (GOOD.replace('"14749-6"', "14749"), "invalid LOINC"),
        (GOOD.replace('"1001"', "1001"), "non-empty string"),
        (GOOD.replace('"2026.09.1"', "2026.09"), "quoted string"),
        (GOOD.replace('"2026.09.1"', '"september"'), "quoted string"),
        (GOOD.replace("site: SITE-T01", "site: SITE-T02"), "file name"),
        (GOOD.replace("code_system: T", "code_system: ''"), "code_system"),
        (GOOD + "extra: 1\n", "exactly the keys"),
        (GOOD.replace("code_system: T\n", ""), "exactly the keys"),
        (GOOD.split("codes:")[0] + "codes: {}\n", "at least one"),
        (GOOD.replace(', display: "Glucose [Moles/volume] in Serum or Plasma"', ""),
         "exactly 'loinc' and 'display'"),
        (GOOD.replace('"Glucose [Moles/volume] in Serum or Plasma"', '""'), "needs a display"),
        ("codes: [1, 2\n", "not readable YAML"),
        ("- a list\n", "exactly the keys"),
    ],
)
def test_a_malformed_map_is_refused(tmp_path, text, message):
    with pytest.raises(SiteMapError, match=message):
        read_site_map(_write(tmp_path, text))


def test_map_errors_name_the_file(tmp_path):
    with pytest.raises(SiteMapError, match="SITE-T01.yaml"):
        read_site_map(_write(tmp_path, GOOD.replace("14749-6", "14749-7")))
