"""Lake: declared properties (new and older tables), replace_partition and insert_new from Arrow and Spark."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from looper_common.lake.engine import Lake
from looper_common.lake.tables import TableSpec

pytestmark = pytest.mark.integration
SCHEMA = pa.schema([
    pa.field("id", pa.string(), False),
    pa.field("value", pa.float64(), False),
    pa.field("blueprint", pa.string(), False),
    pa.field("date", pa.date32(), False),
])
PROPERTIES = (("delta.dataSkippingStatsColumns", "value"),)
DAY = date(2026, 1, 5)


def _spec(name: str, properties: tuple[tuple[str, str], ...] = PROPERTIES) -> TableSpec:
    return TableSpec(name, SCHEMA, ("blueprint", "date"), ("id",), properties)


def _rows(*rows: tuple[str, float, str]) -> pa.Table:
    return pa.Table.from_pylist([{"id": i, "value": v, "blueprint": b, "date": DAY} for i, v, b in rows], SCHEMA)


def _properties(lake: Lake, spec: TableSpec) -> dict[str, str]:
    return DeltaTable(lake.path(spec)).metadata().configuration


def _ids(lake: Lake, spec: TableSpec) -> list[tuple[str, str]]:
    table = lake.read(spec).table
    return sorted(zip(table["id"].to_pylist(), table["blueprint"].to_pylist(), strict=True))


def test_declared_properties_on_new_tables_and_on_older_ones(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    created = _spec("t/created")
    lake.ensure_tables([created])
    assert _properties(lake, created)["delta.dataSkippingStatsColumns"] == "value"

    older = _spec("t/older")
    lake.ensure_tables([_spec(older.name, ())])  # created before the property was declared
    assert "delta.dataSkippingStatsColumns" not in _properties(lake, older)
    lake.ensure_tables([older])
    assert _properties(lake, older)["delta.dataSkippingStatsColumns"] == "value"
    version = DeltaTable(lake.path(older)).version()
    lake.ensure_tables([older])
    assert DeltaTable(lake.path(older)).version() == version  # already set: no new commit


@pytest.mark.parametrize("source", ["arrow", "spark"])
def test_replace_partition_replaces_only_its_partition(spark, tmp_path, source):
    lake = Lake(str(tmp_path / "lake"), spark=lambda: spark)
    spec = _spec("t/replaced")
    key = "spark.sql.maxConcurrentOutputFileWriters"
    before = spark.conf.get(key, None)

    def write(rows: pa.Table, blueprint: str = "a") -> None:
        frame = rows if source == "arrow" else spark.createDataFrame(rows.to_pandas(), "id string, value double, "
                                                                      "blueprint string, date date")
        lake.replace_partition(spec, frame, {"blueprint": blueprint, "date": DAY})

    write(_rows(("1", 1.0, "a"), ("2", 2.0, "a")))
    write(_rows(("9", 9.0, "b")), blueprint="b")
    write(_rows(("3", 3.0, "a")))  # replaces blueprint a's partition, leaves b's
    assert _ids(lake, spec) == [("3", "a"), ("9", "b")]
    assert spark.conf.get(key, None) == before

    # a row outside the replaced partition fails the write, which leaves the table as it was
    version = lake.version(spec)
    with pytest.raises(Exception, match="(?i)replaceWhere|constraint|predicate|invariant|failed validation"):
        write(_rows(("4", 4.0, "a"), ("5", 5.0, "b")))
    assert lake.version(spec) == version
    assert _ids(lake, spec) == [("3", "a"), ("9", "b")]
    assert spark.conf.get(key, None) == before


@pytest.mark.parametrize("source", ["arrow", "spark"])
def test_insert_new_inserts_each_key_once(spark, tmp_path, source):
    lake = Lake(str(tmp_path / "lake"), spark=lambda: spark)
    spec = _spec("t/inserted")

    def insert(rows: pa.Table) -> int:
        frame = rows if source == "arrow" else spark.createDataFrame(rows.to_pandas(), "id string, value double, "
                                                                      "blueprint string, date date")
        return lake.insert_new(spec, frame, {"blueprint": sorted(set(rows["blueprint"].to_pylist())), "date": [DAY]})

    assert insert(_rows(("a", 1.0, "x"), ("b", 1.0, "x"))) == 2
    assert insert(_rows(("b", 2.0, "x"), ("c", 2.0, "x"))) == 1  # b is there already
    version = lake.version(spec)
    assert insert(_rows(("a", 3.0, "x"), ("b", 3.0, "x"), ("c", 3.0, "x"))) == 0
    assert _ids(lake, spec) == [("a", "x"), ("b", "x"), ("c", "x")]
    values = dict(zip(*(lake.read(spec).table[c].to_pylist() for c in ("id", "value")), strict=True))
    assert values == {"a": 1.0, "b": 1.0, "c": 2.0}  # the first write of a key stays
    assert lake.version(spec) in (version, version + 1)  # a rerun changes no row


def test_a_table_created_before_a_nullable_column_gains_it(tmp_path):
    from looper_common.lake.tables import BRONZE_DECISIONS

    lake = Lake(str(tmp_path / "lake"))
    old_schema = pa.schema([f for f in BRONZE_DECISIONS.schema if f.name != "default_reason"])
    lake.ensure_tables([TableSpec(BRONZE_DECISIONS.name, old_schema, BRONZE_DECISIONS.partition_by, ("event_id",))])
    lake.ensure_tables([BRONZE_DECISIONS])
    assert "default_reason" in DeltaTable(lake.path(BRONZE_DECISIONS)).schema().to_arrow().names
    version = DeltaTable(lake.path(BRONZE_DECISIONS)).version()
    lake.ensure_tables([BRONZE_DECISIONS])
    assert DeltaTable(lake.path(BRONZE_DECISIONS)).version() == version  # present: no new commit


def test_join_stats_written_before_its_late_columns_is_migrated(tmp_path):
    """A lake whose monitoring/join_stats predates late_after_join / relabelled_after_join keeps working."""
    from deltalake import write_deltalake

    from looper_common.lake.engine import blueprint_dates
    from looper_common.lake.tables import JOIN_STATS

    lake = Lake(str(tmp_path / "lake"))
    newest = ("late_after_join", "relabelled_after_join")
    old_schema = pa.schema([f for f in JOIN_STATS.schema if f.name not in newest])
    old_row = {"blueprint": "b", "blueprint_version": "v0", "examples": 10, "matured_decisions": 5,
               "observations_in_window": 3, "late_observations": 0, "early_observations": 0,
               "orphan_observations": 1, "median_feedback_delay_s": 60.0, "date": DAY}
    write_deltalake(lake.path(JOIN_STATS), pa.Table.from_pylist([old_row], old_schema),
                    partition_by=list(JOIN_STATS.partition_by))
    lake.ensure_tables()  # what every job does when it opens the lake
    assert set(newest) <= set(DeltaTable(lake.path(JOIN_STATS)).schema().to_arrow().names)
    later = {**old_row, "date": date(2026, 1, 6), "late_after_join": [("clicked", 2)],
             "relabelled_after_join": None}
    lake.replace_partition(JOIN_STATS, pa.Table.from_pylist([later], JOIN_STATS.schema),
                           {"blueprint": "b", "date": later["date"]})
    rows = {r["date"]: r for r in lake.read(JOIN_STATS, filters=blueprint_dates("b", DAY, later["date"]))
            .table.to_pylist()}
    assert rows[DAY] == {**old_row, "late_after_join": None, "relabelled_after_join": None}
    assert rows[later["date"]]["late_after_join"] == [("clicked", 2)]
    # the old day's row can be rewritten with the new columns (what labels/late.py does)
    lake.replace_partition(JOIN_STATS, pa.Table.from_pylist([{**old_row, "late_after_join": [("clicked", 0)]}],
                                                           JOIN_STATS.schema), {"blueprint": "b", "date": DAY})
    assert lake.read(JOIN_STATS, filters=blueprint_dates("b", DAY, DAY)).table["late_after_join"].to_pylist() \
        == [[("clicked", 0)]]


def test_a_missing_non_nullable_column_is_a_clear_error(tmp_path):
    from looper_common.lake.delta import SchemaMigrationError
    from looper_common.lake.tables import JOIN_STATS

    lake = Lake(str(tmp_path / "lake"))
    old_schema = pa.schema([f for f in JOIN_STATS.schema if f.name != "orphan_observations"])
    lake.ensure_tables([TableSpec(JOIN_STATS.name, old_schema, JOIN_STATS.partition_by, ("blueprint", "date"))])
    with pytest.raises(SchemaMigrationError, match="join_stats .* non-nullable column.s. orphan_observations"):
        lake.ensure_tables([JOIN_STATS])
