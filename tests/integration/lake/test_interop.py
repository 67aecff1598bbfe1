"""The lake's tables are read and written by both engines: delta-rs (this process) and Spark with Delta."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from looper_common.lake.engine import Lake
from looper_common.lake.tables import ALL_TABLES, BRONZE_OBSERVATIONS, TIMESTAMP

pytestmark = pytest.mark.integration
SPEC = BRONZE_OBSERVATIONS
DAY = date(2026, 1, 5)
INSTANT = datetime(2026, 1, 5, 23, 59, 59, 123456, tzinfo=UTC)  # microseconds, one second before midnight UTC


def _rows(ids: list[str], day: date = DAY, value: float = 1.0) -> pa.Table:
    n = len(ids)
    return pa.table({
        "event_id": ids, "decision_id": [f"d-{i}" for i in ids], "blueprint": ["bp"] * n, "name": ["click"] * n,
        "value": [value] * n, "ts": pa.array([INSTANT] * n, TIMESTAMP), "date": [day] * n,
    })


def _partitions(*days: date) -> dict[str, list]:
    return {"blueprint": ["bp"], "date": list(days)}


def _by_delta_rs(lake: Lake) -> list[tuple]:
    table = DeltaTable(lake.path(SPEC)).to_pyarrow_table()
    return sorted(tuple(row.values()) for row in table.select(SPEC.columns).to_pylist())


def _by_spark(spark, lake: Lake) -> list[tuple]:
    frame = spark.read.format("delta").load(lake.path(SPEC)).select(*SPEC.columns)
    return sorted(tuple(row.values()) for row in frame.toArrow().cast(SPEC.schema).to_pylist())


def _frame(spark, rows: pa.Table):
    return spark.createDataFrame(rows.to_pandas(), "event_id string, decision_id string, blueprint string, "
                                 "name string, value double, ts timestamp, date date")


def _assert_stats_on_every_file(lake: Lake) -> None:
    actions = pa.table(DeltaTable(lake.path(SPEC)).get_add_actions(flatten=True)).to_pylist()
    assert actions
    for add in actions:
        assert add["num_records"] > 0
        for column in ("event_id", "value", "ts"):
            assert add[f"min.{column}"] is not None and add[f"max.{column}"] is not None, (column, add["path"])


def test_writes_by_either_engine_read_equal_by_the_other(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"), spark=lambda: spark)
    lake.ensure_tables([SPEC])  # delta-rs creates ...
    lake.append(SPEC, _rows(["a", "b"]))  # ... and appends
    assert lake.insert_new(SPEC, _rows(["b", "c"]), _partitions(DAY)) == 1
    assert _by_spark(spark, lake) == _by_delta_rs(lake)
    assert len(_by_spark(spark, lake)) == 3

    # Spark MERGEs and replaces a partition; delta-rs reads what Spark reads
    assert lake.insert_new(SPEC, _frame(spark, _rows(["c", "d"])), _partitions(DAY)) == 1
    other = date(2026, 1, 6)
    lake.replace_partition(SPEC, _frame(spark, _rows(["x", "y"], other)), {"blueprint": "bp", "date": other})
    lake.replace_partition(SPEC, _frame(spark, _rows(["z"], other, 2.0)), {"blueprint": "bp", "date": other})
    rows = _by_delta_rs(lake)
    assert rows == _by_spark(spark, lake)
    assert [r[0] for r in rows] == ["a", "b", "c", "d", "z"]
    _assert_stats_on_every_file(lake)  # files written by delta-rs and by Spark

    # a known instant round-trips exactly, UTC-aware, whichever engine wrote or reads it
    assert {r[5] for r in rows} == {INSTANT}
    spark_ts = spark.read.format("delta").load(lake.path(SPEC)).select("ts").toArrow()
    assert spark_ts.schema.field("ts").type.tz is not None
    assert set(spark_ts.cast(pa.schema([pa.field("ts", TIMESTAMP)]))["ts"].to_pylist()) == {INSTANT}
    assert lake.read(SPEC).table.schema.field("ts").type == TIMESTAMP


def test_after_compaction_by_either_engine(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"), spark=lambda: spark)
    lake.ensure_tables([SPEC])
    for i in range(3):
        lake.append(SPEC, _rows([f"r{i}"]))
    expected = _by_delta_rs(lake)
    spark.sql(f"OPTIMIZE delta.`{lake.path(SPEC)}`")
    assert len(DeltaTable(lake.path(SPEC)).file_uris()) == 1
    assert _by_delta_rs(lake) == expected == _by_spark(spark, lake)
    _assert_stats_on_every_file(lake)

    for i in range(3, 6):
        lake.insert_new(SPEC, _frame(spark, _rows([f"r{i}"])), _partitions(DAY))
    expected = _by_spark(spark, lake)
    DeltaTable(lake.path(SPEC)).optimize.compact()
    assert len(DeltaTable(lake.path(SPEC)).file_uris()) == 1
    assert _by_spark(spark, lake) == expected == _by_delta_rs(lake)
    assert len(expected) == 6
    _assert_stats_on_every_file(lake)


def _checkpoints(lake: Lake) -> list[str]:
    return sorted(p.name for p in (Path(lake.path(SPEC)) / "_delta_log").iterdir() if ".checkpoint" in p.name)


def test_checkpoints_written_by_either_engine_are_read_by_the_other(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"), spark=lambda: spark)
    lake.ensure_tables([SPEC])
    spark.sql(f"ALTER TABLE delta.`{lake.path(SPEC)}` SET TBLPROPERTIES ('delta.checkpointInterval' = '2')")
    for i in range(3):  # Spark writes a checkpoint every second commit
        lake.insert_new(SPEC, _frame(spark, _rows([f"s{i}"])), _partitions(DAY))
    assert _checkpoints(lake)
    assert _by_delta_rs(lake) == _by_spark(spark, lake)
    assert lake.insert_new(SPEC, _rows(["s0", "s9"]), _partitions(DAY)) == 1  # delta-rs writes after it

    table = DeltaTable(lake.path(SPEC))
    table.create_checkpoint()  # delta-rs writes one at its version
    assert f"{table.version():020d}.checkpoint.parquet" in _checkpoints(lake)
    lake.append(SPEC, _rows(["r1"]))
    rows = _by_spark(spark, lake)
    assert rows == _by_delta_rs(lake)
    assert [r[0] for r in rows] == ["r1", "s0", "s1", "s2", "s9"]


def test_every_contracted_table_exists_after_ensure_tables(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"), spark=lambda: spark)
    lake.ensure_tables()
    for spec in ALL_TABLES:
        read = lake.read(spec)
        assert read.version >= 0 and read.table.num_rows == 0 and read.table.schema == spec.schema, spec.name
        frame = spark.read.format("delta").load(lake.path(spec))
        assert frame.count() == 0 and sorted(frame.columns) == sorted(spec.columns), spec.name
        assert list(DeltaTable(lake.path(spec)).metadata().partition_columns) == list(spec.partition_by)


def test_a_read_above_local_read_max_bytes_runs_on_spark_with_the_same_rows(spark, tmp_path):
    root = str(tmp_path / "lake")
    local = Lake(root, spark=lambda: spark)
    local.ensure_tables([SPEC])
    local.append(SPEC, _rows(["a", "b"]))
    local.append(SPEC, _rows(["c"], date(2026, 1, 6)))
    small = local.read(SPEC, filters=[("date", "=", DAY)])
    large = Lake(root, local_read_max_bytes=1, spark=lambda: spark).read(SPEC, filters=[("date", "=", DAY)])
    assert (small.engine, large.engine) == ("delta-rs", "spark")
    assert small.version == large.version
    assert large.table.schema == small.table.schema == SPEC.schema
    assert sorted(large.table.to_pylist(), key=str) == sorted(small.table.to_pylist(), key=str)
    assert sorted(large.table["event_id"].to_pylist()) == ["a", "b"]
    assert Lake(root).read(SPEC).engine == "delta-rs"  # no Spark configured: delta-rs whatever the size
