import zipfile

import pytest

from connectors.dicom.sources import (
    BAD_ZIP,
    NESTED_ZIP,
    FileRef,
    ListingReject,
    ReadError,
    ZipCache,
    iter_source,
)


def test_a_folder_is_listed_recursively_in_name_order_skipping_hidden_names(tmp_path):
    for name in ["b.dcm", "a/z.dcm", "a/c.dcm", ".hidden.dcm", ".git/x.dcm", "a/.DS_Store"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [ref.label for ref in iter_source(tmp_path)] == ["b.dcm", "a/c.dcm", "a/z.dcm"]


def test_zip_members_are_labelled_with_the_archive_and_member_path(tmp_path):
    with zipfile.ZipFile(tmp_path / "batch.zip", "w") as archive:
        archive.writestr("s1/i2.dcm", b"2")
        archive.writestr("s1/i1.dcm", b"1")
        archive.writestr("__MACOSX/s1/._i1.dcm", b"junk")
        archive.writestr("s1/", b"")
    (tmp_path / "plain.dcm").write_bytes(b"p")
    listed = list(iter_source(tmp_path))
    assert [ref.label for ref in listed] == [
        "batch.zip!s1/i1.dcm",
        "batch.zip!s1/i2.dcm",
        "plain.dcm",
    ]
    cache = ZipCache()
    assert [cache.read(ref) for ref in listed] == [b"1", b"2", b"p"]
    cache.close()


def test_a_zip_given_as_the_source_labels_members_with_its_name(tmp_path):
    with zipfile.ZipFile(tmp_path / "batch-002.zip", "w") as archive:
        archive.writestr("x.dcm", b"x")
    assert list(iter_source(tmp_path / "batch-002.zip")) == [
        FileRef("batch-002.zip!x.dcm", str(tmp_path / "batch-002.zip"), "x.dcm")
    ]


def test_a_single_file_is_labelled_with_its_name(tmp_path):
    (tmp_path / "one.dcm").write_bytes(b"x")
    assert [ref.label for ref in iter_source(tmp_path / "one.dcm")] == ["one.dcm"]


def test_a_file_named_zip_that_is_not_one_is_a_listing_reject(tmp_path):
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    assert list(iter_source(tmp_path)) == [ListingReject("broken.zip", BAD_ZIP)]


def test_a_zip_inside_a_zip_is_not_read(tmp_path):
    with zipfile.ZipFile(tmp_path / "outer.zip", "w") as archive:
        archive.writestr("inner.zip", b"PK")
    (ref,) = iter_source(tmp_path / "outer.zip")
    with pytest.raises(ReadError) as raised:
        ZipCache().read(ref)
    assert raised.value.reason == NESTED_ZIP
