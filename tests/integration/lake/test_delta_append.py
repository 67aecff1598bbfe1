"""insert_new_rows writes what an insert-only MERGE on event_id writes, in one Delta transaction."""

from __future__ import annotations

import pytest

from looper_common.lake import delta_append
from looper_common.lake.arrow_rows import rows_to_arrow
from looper_common.lake.delta_append import insert_new_rows
from looper_common.lake.tables import BRONZE_OBSERVATIONS, Lake, merge_new_rows

pytestmark = pytest.mark.integration
DAY = 20_458  # 2026-01-05, days since the epoch
TS = DAY * 86_400_000


def _rows(ids, day=DAY, blueprint="t_notify"):
    rows = [(i, "d", blueprint, "click", 1.5, TS + (day - DAY) * 86_400_000, day) for i in ids]
    return rows_to_arrow(rows, BRONZE_OBSERVATIONS.schema)


def _partitions(table):
    return {"blueprint": sorted(set(table["blueprint"].to_pylist())), "date": sorted(set(table["date"].to_pylist()))}


def _insert(spark, lake, table):
    return insert_new_rows(spark, lake, BRONZE_OBSERVATIONS, table, _partitions(table))


def test_inserts_only_new_keys_and_reads_like_a_merge(spark, lake, tmp_path):
    assert _insert(spark, lake, _rows(["a", "b"])) == 2
    assert _insert(spark, lake, _rows(["b", "c"])) == 1  # b is there already
    assert _insert(spark, lake, _rows(["a", "b", "c"])) == 0
    # Like the MERGE, the key is looked up in the rows' own partitions only.
    assert _insert(spark, lake, _rows(["a"], day=DAY + 1)) == 1
    merged = Lake(str(tmp_path / "merged"))
    for ids, day in ((["a", "b"], DAY), (["b", "c"], DAY), (["a"], DAY + 1)):
        frame = spark.createDataFrame(_rows(ids, day), BRONZE_OBSERVATIONS.schema)
        merge_new_rows(spark, merged, BRONZE_OBSERVATIONS, frame, _partitions(_rows(ids, day)))

    def rows(where):
        return sorted(tuple(r) for r in where.read(spark, BRONZE_OBSERVATIONS).collect())

    assert rows(lake) == rows(merged)
    assert len(rows(lake)) == 4


def test_a_concurrent_commit_to_the_same_partition_fails_the_insert(spark, lake, monkeypatch):
    _insert(spark, lake, _rows(["a"]))
    live_files = delta_append.live_files

    def then_another_writer(*args):
        files = live_files(*args)
        monkeypatch.setattr(delta_append, "live_files", live_files)
        assert _insert(spark, lake, _rows(["x"])) == 1  # commits between our read and our commit
        return files

    monkeypatch.setattr(delta_append, "live_files", then_another_writer)
    with pytest.raises(Exception, match="Concurrent|concurrent"):
        _insert(spark, lake, _rows(["x", "y"]))
    assert sorted(r["event_id"] for r in lake.read(spark, BRONZE_OBSERVATIONS).collect()) == ["a", "x"]


def test_tables_with_deletion_vectors_are_left_to_spark(spark, lake):
    path = lake.path(BRONZE_OBSERVATIONS)
    lake.ensure(spark, BRONZE_OBSERVATIONS)
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    assert _insert(spark, lake, _rows(["a"])) is None
