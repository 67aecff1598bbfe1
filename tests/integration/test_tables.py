"""Lake.ensure sets the table properties a TableSpec declares, on new and older tables."""

from __future__ import annotations

import pytest
from delta.tables import DeltaTable
from pyspark.sql import types as T

from looper_common import tables
from looper_common.tables import Lake, TableSpec

pytestmark = pytest.mark.integration
SCHEMA = T.StructType([
    T.StructField("id", T.StringType(), False),
    T.StructField("value", T.DoubleType(), False),
    T.StructField("blueprint", T.StringType(), False),
    T.StructField("date", T.DateType(), False),
])
PROPERTIES = (("delta.dataSkippingStatsColumns", "value"),)


def _spec(name: str, properties: tuple[tuple[str, str], ...] = PROPERTIES) -> TableSpec:
    return TableSpec(name, SCHEMA, ("blueprint", "date"), ("id",), properties)


def _properties(spark, lake: Lake, spec: TableSpec) -> dict[str, str]:
    return DeltaTable.forPath(spark, lake.path(spec)).detail().first()["properties"]


def _version(spark, lake: Lake, spec: TableSpec) -> int:
    return DeltaTable.forPath(spark, lake.path(spec)).history(1).first()["version"]


def test_ensure_sets_properties_on_new_and_older_tables(spark, lake):
    created = _spec("t/created")
    lake.ensure(spark, created)
    assert _properties(spark, lake, created)["delta.dataSkippingStatsColumns"] == "value"

    older = _spec("t/older")
    lake.ensure(spark, _spec(older.name, ()))  # created before the property was declared
    assert "delta.dataSkippingStatsColumns" not in _properties(spark, lake, older)
    tables._ENSURED.clear()  # as in a new session
    lake.ensure(spark, older)
    assert _properties(spark, lake, older)["delta.dataSkippingStatsColumns"] == "value"
    version = _version(spark, lake, older)
    tables._ENSURED.clear()
    lake.ensure(spark, older)  # already set: no new commit
    assert _version(spark, lake, older) == version
