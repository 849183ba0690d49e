import subprocess
import sys

import pytest
from pydicom.datadict import DicomDictionary, dictionary_VR, private_dictionary_VR
from pydicom.uid import UID

from connectors.dicom import dictionary


def test_standard_vrs_are_pydicom_s():
    assert all(dictionary.standard_vr(tag) == entry[0] for tag, entry in DicomDictionary.items())


@pytest.mark.parametrize("tag", [0x60003000, 0x60220010, 0x50000005, 0x00203101, 0x7F110010])
def test_repeating_groups_are_looked_up_as_pydicom_does(tag):
    try:
        expected = dictionary_VR(tag)
    except KeyError:
        expected = None
    assert dictionary.standard_vr(tag) == expected


def test_unknown_tags_have_no_vr():
    assert dictionary.standard_vr(0x00990099) is None


@pytest.mark.parametrize(
    ("tag", "creator"),
    [
        (0x0019100B, "SIEMENS MR HEADER"),
        (0x00291008, "SIEMENS CSA HEADER"),
        (0x00431029, "GEMS_PARM_01"),
    ],
)
def test_private_vrs_are_looked_up_by_creator_as_pydicom_does(tag, creator):
    assert dictionary.private_vr(tag, creator) == private_dictionary_VR(tag, creator)


def test_unknown_private_creators_have_no_vr():
    assert dictionary.private_vr(0x00191001, "NOBODY") is None


def test_sop_class_names_are_the_registry_s():
    for uid in ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.88.34"):
        assert dictionary.tables().sop_classes[uid] == UID(uid).name
    assert "1.2.840.10008.1.2.1" not in dictionary.tables().sop_classes


def test_pool_workers_import_neither_pydicom_nor_the_frame_libraries():
    code = (
        "import sys, connectors.dicom.pool; "
        "print(sorted(m for m in ('pydicom', 'pyarrow', 'numpy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
