"""Every real DICOM file in shared/data loads, or is rejected for a stated reason.

Expected outcomes were read from the MANIFEST and the files with pydicom (an independent
parser), not from this reader's output: each file's UIDs, modality and rows are compared
with pydicom's, and its whole ``header_json`` with pydicom's ``to_json_dict``.

All 16 load. ``bad_sequence.dcm`` (pydicom #1067) loads with warnings: its "sequence
encoded implicit inside an explicit VR file" is CTDIPhantomTypeCodeSequence written with VR
UN and its items in implicit VR little endian, which is how PS3.5 6.2.2 encodes a sequence
as UN; read with the dictionary VR (as pydicom does), the header is consistent to the last
element and equals pydicom's reading. Its UIDs are 64-hex-digit hashes (anonymisation), kept
as written with a warning each. ``liver_deflate.dcm`` declares Deflated Image Frame
Compression (1.2.840.10008.1.2.8.1): its frames are deflated, its dataset is plain explicit
VR little endian (test_parse covers a deflated dataset).
"""

import json
from pathlib import Path

import pydicom
import pytest

from connectors.dicom import read_dicom
from connectors.dicom.instance import W_SOP_INSTANCE_MISMATCH, invalid_uid
from connectors.dicom.parse import W_NO_META, W_UN_KNOWN
from tests.connectors.dicom.reference import pydicom_identity, pydicom_model, shape

HASHED_UIDS = [
    W_SOP_INSTANCE_MISMATCH,
    invalid_uid("SOPInstanceUID"),
    invalid_uid("SeriesInstanceUID"),
    invalid_uid("StudyInstanceUID"),
    W_UN_KNOWN,
]

# file -> (transfer syntax, preamble, file meta, has pixels, frames, private elements,
#          warnings)
EXPECTED: dict[str, tuple[str, bool, bool, bool, int | None, int, list[str]]] = {
    "693_J2KR.dcm": ("1.2.840.10008.1.2.4.90", True, True, True, None, 0, []),
    "JPGLosslessP14SV1_1s_1f_8b.dcm": ("1.2.840.10008.1.2.4.70", True, True, True, None, 22, []),
    "MR-SIEMENS-DICOM-WithOverlays.dcm": ("1.2.840.10008.1.2.1", True, True, True, None, 9, []),
    "OBXXXX1A_rle.dcm": ("1.2.840.10008.1.2.5", True, True, True, None, 75, []),
    # No preamble, no meta: a bare implicit VR little endian dataset.
    "OT-PAL-8-face.dcm": ("1.2.840.10008.1.2", False, False, True, None, 0, [W_NO_META]),
    "US1_J2KR.dcm": ("1.2.840.10008.1.2.4.90", True, True, True, None, 0, []),
    "bad_sequence.dcm": ("1.2.840.10008.1.2.4.70", True, True, True, None, 0, HASHED_UIDS),
    "dx_image.dcm": ("1.2.840.10008.1.2.1", True, True, True, None, 0, []),
    "eCT_Supplemental.dcm": ("1.2.840.10008.1.2.1", True, True, True, 2, 0, []),
    "emri_small_big_endian.dcm": ("1.2.840.10008.1.2.2", True, True, True, 10, 0, []),
    "emri_small_jpeg_ls_lossless.dcm": ("1.2.840.10008.1.2.4.80", True, True, True, 10, 0, []),
    "explicit_VR-UN.dcm": ("1.2.840.10008.1.2.4.90", True, True, True, None, 3, [W_UN_KNOWN]),
    "liver_deflate.dcm": ("1.2.840.10008.1.2.8.1", True, True, True, 3, 0, []),
    "seg_image_ct_binary.dcm": ("1.2.840.10008.1.2", True, True, True, 3, 0, []),
    "sm_image.dcm": ("1.2.840.10008.1.2.1", True, True, True, 25, 0, []),
    # An SR document has no pixel data.
    "sr_document.dcm": ("1.2.840.10008.1.2.1", True, True, False, None, 0, []),
}


@pytest.fixture(scope="module")
def dicom_folder(shared_data: Path) -> Path:
    return shared_data / "dicom"


@pytest.fixture(scope="module")
def loaded(dicom_folder: Path) -> dict[str, dict]:
    result = read_dicom(dicom_folder, workers=1)
    assert result.rejects.height == 0
    return {row["source_file"]: row for row in result.tables["instances"].iter_rows(named=True)}


def test_the_expected_outcomes_cover_every_shared_dicom_file(dicom_folder):
    assert {p.name for p in dicom_folder.iterdir() if p.is_file()} == EXPECTED.keys()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_shared_dicom_file_loads_as_pydicom_reads_it(dicom_folder, loaded, name):
    syntax, preamble, meta, pixels, frames, private, warnings = EXPECTED[name]
    row = loaded[name]
    assert (
        row["transfer_syntax_uid"],
        row["has_preamble"],
        row["has_file_meta"],
        row["has_pixels"],
        row["number_of_frames"],
        row["n_private_elements"],
        row["warnings"],
    ) == (syntax, preamble, meta, pixels, frames, private, sorted(warnings))
    path = dicom_folder / name
    reference = pydicom_identity(path)
    assert (
        row["sop_class_uid"],
        row["sop_instance_uid"],
        row["study_instance_uid"],
        row["series_instance_uid"],
        row["modality"],
        row["rows"],
        row["columns"],
    ) == tuple(reference.values())
    assert row["size_bytes"] == path.stat().st_size
    assert shape(json.loads(row["header_json"])) == pydicom_model(path)


def test_pixel_presence_agrees_with_a_full_pydicom_read(dicom_folder, loaded):
    for name, row in loaded.items():
        dataset = pydicom.dcmread(dicom_folder / name, force=True, defer_size=64)
        present = any(tag in dataset for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009))
        assert row["has_pixels"] is present, name


def test_the_pool_reads_the_shared_files_as_the_caller_does(dicom_folder, loaded, tmp_path):
    # Copies (links) of the files, enough of them for the reader to start its pool.
    for copy in range(5):
        for path in dicom_folder.iterdir():
            (tmp_path / f"{copy}-{path.name}").symlink_to(path)
    pooled = read_dicom(tmp_path, workers=2).tables["instances"]
    for row in pooled.iter_rows(named=True):
        expected = loaded[row["source_file"].split("-", 1)[1]]
        assert {k: v for k, v in row.items() if k != "source_file"} == {
            k: v for k, v in expected.items() if k != "source_file"
        }
