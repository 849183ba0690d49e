import polars as pl

from connectors.hl7v2 import MESSAGE_SCHEMA, empty_messages, table_schema
from connectors.hl7v2.schema import LAB_RESULTS, MESSAGE_COLUMNS, MESSAGES, frame
from connectors.lab_schema import LAB_RESULT_SCHEMA


def test_the_tables_have_the_shared_results_schema_and_the_messages_schema():
    assert table_schema(LAB_RESULTS) == LAB_RESULT_SCHEMA
    assert table_schema(MESSAGES) == MESSAGE_SCHEMA
    assert list(MESSAGE_SCHEMA) == [
        "source_locator",
        "message_id",
        "message_type",
        "trigger",
        "version",
        "sending_application",
        "sending_facility",
        "message_datetime",
        "patient_id",
        "encoding",
        "segments",
        "results",
        "rejected_results",
    ]
    assert MESSAGE_SCHEMA["message_datetime"] == pl.Datetime("us", "UTC")


def test_every_messages_column_is_described():
    assert all(column.description.endswith(".") for column in MESSAGE_COLUMNS)


def test_frames_without_rows_keep_their_schema():
    assert frame(LAB_RESULTS, []).schema == LAB_RESULT_SCHEMA
    assert empty_messages().schema == MESSAGE_SCHEMA


def test_datetime_columns_are_built_from_epoch_microseconds():
    row = ("message:1", None, None, None, None, None, None, 1_500_000, None, "utf-8", 1, 0, 0)
    built = frame(MESSAGES, [row])
    assert built.schema == MESSAGE_SCHEMA
    assert str(built["message_datetime"].item()) == "1970-01-01 00:00:01.500000+00:00"
