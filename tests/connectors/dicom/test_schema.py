import polars as pl

from connectors.dicom import INSTANCE_COLUMNS, instance_schema

CONTRACT = [
    "source_file",
    "sha256",
    "size_bytes",
    "has_preamble",
    "has_file_meta",
    "transfer_syntax_uid",
    "sop_class_uid",
    "sop_class_name",
    "sop_instance_uid",
    "study_instance_uid",
    "series_instance_uid",
    "frame_of_reference_uid",
    "patient_id",
    "issuer_of_patient_id",
    "accession_number",
    "patient_sex",
    "patient_birth_date",
    "patient_age",
    "study_date",
    "study_time",
    "series_date",
    "series_time",
    "content_date",
    "acquisition_datetime",
    "study_id",
    "study_description",
    "series_description",
    "protocol_name",
    "modality",
    "series_number",
    "instance_number",
    "acquisition_number",
    "body_part_examined",
    "laterality",
    "patient_position",
    "manufacturer",
    "manufacturer_model_name",
    "station_name",
    "institution_name",
    "device_serial_number",
    "software_versions",
    "rows",
    "columns",
    "bits_allocated",
    "bits_stored",
    "samples_per_pixel",
    "photometric_interpretation",
    "number_of_frames",
    "pixel_spacing",
    "slice_thickness",
    "spacing_between_slices",
    "image_orientation_patient",
    "image_position_patient",
    "image_type",
    "kvp",
    "magnetic_field_strength",
    "repetition_time",
    "echo_time",
    "contrast_bolus_agent",
    "convolution_kernel",
    "burned_in_annotation",
    "lossy_image_compression",
    "specific_character_set",
    "has_pixels",
    "n_private_elements",
    "header_json",
    "warnings",
]


def test_the_columns_are_the_contract_s_in_its_order():
    assert list(instance_schema()) == CONTRACT


def test_every_column_has_a_description_and_the_schema_uses_its_dtype():
    for column in INSTANCE_COLUMNS:
        assert column.description.strip().endswith(".")
        assert instance_schema()[column.name] == column.dtype


def test_the_special_dtypes_are_as_agreed():
    schema = instance_schema()
    assert schema["acquisition_datetime"] == pl.Datetime("us")
    assert schema["patient_birth_date"] == pl.Date()
    assert schema["pixel_spacing"] == pl.List(pl.Float64())
    assert schema["image_type"] == pl.List(pl.String())
    assert schema["warnings"] == pl.List(pl.String())
