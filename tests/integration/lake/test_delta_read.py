"""Small tables read and appended with pyarrow from the Delta log give what Spark gives, or defer to it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from looper_common.ingest.streams import event_streams, ingest_events
from looper_common.labels.join import join_feedback
from looper_common.lake import delta_append
from looper_common.lake.delta_append import append_rows
from looper_common.lake.delta_read import arrow_schema, read_table
from looper_common.lake.tables import BRONZE_DECISIONS, SILVER_EXAMPLES, Lake
from looper_common.publishing.publish import load_units
from looper_common.sdk.client import LooperClient
from looper_common.training.examples import load_training_frame
from looper_common.training.registry import ALIAS_HISTORY, record_alias_move, recorded_alias
from tests.conftest import FEATURES, make_blueprint

pytestmark = pytest.mark.integration
BP = make_blueprint()
START = date(2026, 1, 2)
MB = 1_000_000


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) + timedelta(minutes=minute)


@pytest.fixture(scope="module")
def logged(spark, redis_url, tmp_path_factory):
    """Three days of decisions and feedback through the SDK, ingestion and the join: a lake to read."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    sdk = LooperClient(redis_url, blueprints={BP.name: BP}, pointer_ttl_s=0.0)
    other = make_blueprint(name="t_other")
    sdk_other = LooperClient(redis_url, blueprints={other.name: other}, pointer_ttl_s=0.0)
    lake = Lake(str(tmp_path_factory.mktemp("read_lake")))
    for offset in range(3):
        day = START + timedelta(days=offset)
        for i in range(40):
            features = {**FEATURES, "recency": i / 3, "visits": i + offset, "opted_in": i % 3 == 0,
                        "country": ["us", "de", "fr", "é-ü"][i % 4]}
            decision = sdk.get_decision(BP.name, f"u{i % 25}", features, ts=at(day, 1 + i % 20, i))
            if i % 2 == 0:
                sdk.log_observations(decision.decision_id, {"click": 1}, ts=at(day, 1 + i % 20, i + 5))
            if i % 5 == 0:
                sdk.log_observations(decision.decision_id, {"purchase": 2.5 + i, "rating": i % 4},
                                     ts=at(day, 1 + i % 20, i + 30))
        sdk_other.get_decision(other.name, "u1", FEATURES, ts=at(day, 3))  # another blueprint, same tables
    ingest_events(spark, client, lake, {BP.name: BP, other.name: other}, streams=event_streams(client))
    for offset in range(4):
        join_feedback(spark, lake, BP, START + timedelta(days=offset))
    return lake


def both(lake: Lake) -> tuple[Lake, Lake]:
    return dataclasses.replace(lake, pyarrow_max_bytes=0), dataclasses.replace(lake, pyarrow_max_bytes=64 * MB)


def test_training_frames_read_without_spark_equal_sparks(spark, logged):
    on_spark, on_arrow = both(logged)
    for run_date, lookback in ((START + timedelta(days=3), 28), (START + timedelta(days=2), 0)):
        expected = load_training_frame(on_spark, BP, run_date, lookback, spark=lambda: spark)
        got = load_training_frame(on_arrow, BP, run_date, lookback, spark=pytest.fail)
        assert (expected.engine, got.engine) == ("spark", "arrow")
        assert got.version == expected.version
        assert len(got.frame) > 20
        pd.testing.assert_frame_equal(got.frame, expected.frame)
    assert set(got.frame["country"]) == {"us", "de", "fr", "é-ü"} and got.frame["clicked"].isna().sum() == 0


def test_units_read_without_spark_equal_sparks(spark, logged):
    on_spark, on_arrow = both(logged)
    for run_date in (START, START + timedelta(days=2)):
        expected = load_units(on_spark, BP, run_date, spark=lambda: spark).sort_values("unit_id", ignore_index=True)
        got = load_units(on_arrow, BP, run_date, spark=pytest.fail).sort_values("unit_id", ignore_index=True)
        assert len(got) == 25
        pd.testing.assert_frame_equal(got, expected)


def test_spark_reads_when_the_selection_is_too_big_or_the_lake_not_local(spark, logged):
    small = dataclasses.replace(logged, pyarrow_max_bytes=1)
    assert read_table(small, SILVER_EXAMPLES) is None
    assert load_training_frame(small, BP, START, 28, spark=lambda: spark).engine == "spark"
    remote = Lake("s3a://bucket/lake", pyarrow_max_bytes=64 * MB)
    assert read_table(remote, BRONZE_DECISIONS) is None
    assert append_rows(remote, ALIAS_HISTORY, arrow_schema(ALIAS_HISTORY).empty_table()) is None


def test_a_table_with_deletion_vectors_is_left_to_spark(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"), pyarrow_max_bytes=64 * MB)
    _move(lake, spark, "1")
    spark.sql(f"ALTER TABLE delta.`{lake.path(ALIAS_HISTORY)}` SET TBLPROPERTIES "
              "('delta.enableDeletionVectors' = 'true')")
    assert read_table(lake, ALIAS_HISTORY) is None
    assert append_rows(lake, ALIAS_HISTORY, _row("2")) is None
    _move(lake, spark, "2")  # through Spark
    assert recorded_alias(lambda: spark, lake, "m", "champion") == "2"
    assert spark.read.format("delta").load(lake.path(ALIAS_HISTORY)).count() == 2


def _row(version: str, ts: datetime | None = None) -> pa.Table:
    schema = arrow_schema(ALIAS_HISTORY)
    row = {"model": "m", "version": version, "alias": "champion", "ts": ts or datetime.now(UTC),
           "previous_version": None, "actor": "test", "reason": "because", "metrics": {"auc": 0.7},
           "blueprint": "t", "blueprint_version": "v", "run_date": date(2026, 1, 2)}
    return pa.Table.from_pylist([row], schema=schema)


def _move(lake: Lake, spark, version: str) -> None:
    record_alias_move(lambda: spark, lake, name="m", alias="champion", version=version, previous=None,
                      actor="test", reason="because", metrics={"auc": 0.7}, blueprint="t",
                      blueprint_version="v", run_date=date(2026, 1, 2))


def _history(spark, lake: Lake) -> list[tuple]:
    frame = spark.read.format("delta").load(lake.path(ALIAS_HISTORY))
    return sorted((r["version"], r["metrics"]["auc"], r["run_date"]) for r in frame.collect())


def test_appends_without_spark_create_the_table_and_spark_reads_them(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"), pyarrow_max_bytes=64 * MB)
    _move(lake, spark, "1")  # creates the table: no Spark asked
    assert append_rows(lake, ALIAS_HISTORY, _row("2")) == 1
    three = spark.createDataFrame(_row("3").to_pylist(maps_as_pydicts="strict"), ALIAS_HISTORY.schema)
    three.write.format("delta").mode("append").save(lake.path(ALIAS_HISTORY))  # Spark's own commit in between
    _move(lake, spark, "4")
    assert _history(spark, lake) == [(v, 0.7, date(2026, 1, 2)) for v in "1234"]
    history = spark.sql(f"DESCRIBE HISTORY delta.`{lake.path(ALIAS_HISTORY)}`").orderBy("version").collect()
    assert [h["version"] for h in history] == [0, 1, 2, 3]
    assert history[0]["operation"] == "WRITE" and history[0]["engineInfo"] == delta_append.ENGINE_INFO
    # what was appended reads back the same way, by pyarrow and by Spark
    assert recorded_alias(pytest.fail, lake, "m", "champion") == "4"
    assert recorded_alias(lambda: spark, dataclasses.replace(lake, pyarrow_max_bytes=0), "m", "champion") == "4"
    assert recorded_alias(pytest.fail, lake, "m", "challenger") is None


def test_an_append_retries_after_a_concurrent_commit(spark, tmp_path, monkeypatch):
    lake = Lake(str(tmp_path / "lake"), pyarrow_max_bytes=64 * MB)
    _move(lake, spark, "1")
    commit = delta_append._commit_json
    raced = []

    def another_writer_first(root, version, actions):
        if not raced:
            raced.append(version)
            _move(dataclasses.replace(lake, pyarrow_max_bytes=0), spark, "spark")  # commits `version`
        return commit(root, version, actions)

    monkeypatch.setattr(delta_append, "_commit_json", another_writer_first)
    assert append_rows(lake, ALIAS_HISTORY, _row("2")) == 1
    assert raced == [1]
    assert sorted(v for v, _, _ in _history(spark, lake)) == ["1", "2", "spark"]


def test_a_bad_append_raises_and_leaves_the_table_as_it_was(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"), pyarrow_max_bytes=64 * MB)
    _move(lake, spark, "1")
    bad = _row("2").set_column(0, "model", pa.array([None], pa.string()))
    with pytest.raises(ValueError, match="'model' is NOT NULL"):
        append_rows(lake, ALIAS_HISTORY, bad)
    assert _history(spark, lake) == [("1", 0.7, date(2026, 1, 2))]
    assert spark.read.format("delta").load(lake.path(ALIAS_HISTORY)).where(F.col("model").isNull()).count() == 0


def test_a_column_added_after_a_file_was_written_reads_as_null(tmp_path):
    lake = Lake(str(tmp_path / "lake"), pyarrow_max_bytes=64 * MB)
    assert append_rows(lake, ALIAS_HISTORY, _row("1")) == 1
    wider = dataclasses.replace(ALIAS_HISTORY, schema=T.StructType(
        [*ALIAS_HISTORY.schema.fields, T.StructField("note", T.StringType(), True)]))
    read = read_table(lake, wider)
    assert read.version == 0
    assert read.table["note"].to_pylist() == [None] and read.table["version"].to_pylist() == ["1"]


def test_a_table_spark_created_takes_appends_without_spark(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"), pyarrow_max_bytes=64 * MB)
    lake.ensure(spark, ALIAS_HISTORY)  # as jobs before the pyarrow writer created it
    assert append_rows(lake, ALIAS_HISTORY, _row("1")) == 1
    assert _history(spark, lake) == [("1", 0.7, date(2026, 1, 2))]
