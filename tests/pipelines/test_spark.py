"""What the Spark pipelines check before starting Spark: Java, and the columns of a queries file."""

from __future__ import annotations

import pytest

from pipelines.batch import COLUMN_CLASH, NO_QUERY_COLUMNS, BatchError, check_columns
from pipelines.spark import SparkUnavailable, spark_session


def test_without_java_spark_does_not_start_and_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(SparkUnavailable, match="openjdk-17-jre-headless"), spark_session("test", "local[1]"):
        pass


def test_a_queries_file_needs_a_query_column_and_no_output_column() -> None:
    check_columns(["title", "user_id"])
    check_columns(["liked"])
    with pytest.raises(BatchError) as error:
        check_columns(["name", "when"])
    assert str(error.value) == NO_QUERY_COLUMNS.format(found="name, when")
    with pytest.raises(BatchError) as error:
        check_columns(["title", "status", "recommendations"])
    assert str(error.value) == COLUMN_CLASH.format(names="status, recommendations")
