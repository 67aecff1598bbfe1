"""Declared table properties (set at creation, else at the next write); replace_partition replaces one partition."""

from __future__ import annotations

from datetime import date

import pytest
from delta.tables import DeltaTable
from pyspark.sql import types as T

from looper_common.lake import tables
from looper_common.lake.tables import Lake, TableSpec, replace_partition

pytestmark = pytest.mark.integration
SCHEMA = T.StructType([
    T.StructField("id", T.StringType(), False),
    T.StructField("value", T.DoubleType(), False),
    T.StructField("blueprint", T.StringType(), False),
    T.StructField("date", T.DateType(), False),
])
PROPERTIES = (("delta.dataSkippingStatsColumns", "value"),)
DAY = date(2026, 1, 5)


def _spec(name: str, properties: tuple[tuple[str, str], ...] = PROPERTIES) -> TableSpec:
    return TableSpec(name, SCHEMA, ("blueprint", "date"), ("id",), properties)


def _properties(spark, lake: Lake, spec: TableSpec) -> dict[str, str]:
    return DeltaTable.forPath(spark, lake.path(spec)).detail().first()["properties"]


def _version(spark, lake: Lake, spec: TableSpec) -> int:
    return DeltaTable.forPath(spark, lake.path(spec)).history(1).first()["version"]


def test_declared_properties_on_new_tables_and_on_older_ones_at_their_next_write(spark, lake):
    created = _spec("t/created")
    lake.ensure(spark, created)
    assert _properties(spark, lake, created)["delta.dataSkippingStatsColumns"] == "value"

    older = _spec("t/older")
    lake.ensure(spark, _spec(older.name, ()))  # created before the property was declared
    assert "delta.dataSkippingStatsColumns" not in _properties(spark, lake, older)
    tables._ENSURED.clear()  # as in a new session
    lake.ensure(spark, older)  # reading does not change the table
    assert "delta.dataSkippingStatsColumns" not in _properties(spark, lake, older)
    rows = spark.createDataFrame([("x", 1.0, "a", DAY)], SCHEMA)
    replace_partition(lake, older, rows, {"blueprint": "a", "date": DAY})
    assert _properties(spark, lake, older)["delta.dataSkippingStatsColumns"] == "value"
    version = _version(spark, lake, older)
    tables._ENSURED.clear()
    tables._PROPERTIES_SET.clear()
    tables._set_missing_properties(spark, lake.ensure(spark, older), lake.path(older), dict(PROPERTIES))
    assert _version(spark, lake, older) == version  # already set: no new commit


def test_replace_partition_replaces_only_its_partition_and_restores_the_session(spark, lake):
    spec = _spec("t/replaced")
    key = "spark.sql.maxConcurrentOutputFileWriters"
    before = spark.conf.get(key, None)

    def write(rows, blueprint="a"):
        frame = spark.createDataFrame(rows, SCHEMA)
        replace_partition(lake, spec, frame, {"blueprint": blueprint, "date": DAY})

    write([("1", 1.0, "a", DAY), ("2", 2.0, "a", DAY)])
    write([("9", 9.0, "b", DAY)], blueprint="b")
    write([("3", 3.0, "a", DAY)])  # replaces blueprint a's partition, leaves b's
    rows = sorted((r["id"], r["blueprint"]) for r in lake.read(spark, spec).collect())
    assert rows == [("3", "a"), ("9", "b")]
    assert spark.conf.get(key, None) == before

    # a row outside the replaced partition fails the write, which leaves the table as it was
    version = _version(spark, lake, spec)
    with pytest.raises(Exception, match="(?i)replaceWhere|constraint|predicate"):
        write([("4", 4.0, "a", DAY), ("5", 5.0, "b", DAY)])
    assert _version(spark, lake, spec) == version
    assert sorted(r["id"] for r in lake.read(spark, spec).collect()) == ["3", "9"]
    assert spark.conf.get(key, None) == before
    stats = [
        a["add"]["stats"]
        for a in spark.read.json(lake.path(spec) + "/_delta_log/*.json").where("add is not null").collect()
    ]
    assert stats and all('"value"' in s and '"id"' not in s for s in stats)  # only the declared column
