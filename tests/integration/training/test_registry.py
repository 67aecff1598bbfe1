"""The alias history (``gold/alias_history``): moves are recorded, read back on both engines, and
reviewer moves in MLflow (on SQLite) are detected once."""

from __future__ import annotations

import dataclasses
from datetime import date

import mlflow
import pytest

from looper_common.lake.tables import ALIAS_HISTORY
from looper_common.training.registry import (
    CHALLENGER,
    CHAMPION,
    detect_reviewer_moves,
    move_alias,
    record_alias_move,
    recorded_alias,
)

pytestmark = pytest.mark.integration
RUN_DATE = date(2026, 1, 2)
NAME = "looper.t_notify.clicked"


def _move(lake, version: str | None, alias: str = CHAMPION, name: str = "m") -> None:
    record_alias_move(lake, name=name, alias=alias, version=version, previous=None, actor="test",
                      reason="because", metrics={"auc": 0.7}, blueprint="t", blueprint_version="v",
                      run_date=RUN_DATE)


def test_moves_are_appended_and_the_latest_reads_back_on_both_engines(spark, lake):
    assert recorded_alias(lake, "m", CHAMPION) is None  # the table has no row yet
    for version in ("1", "2", "3"):
        _move(lake, version)
    _move(lake, "9", alias=CHALLENGER)
    _move(lake, "7", name="other")
    on_spark = dataclasses.replace(lake, local_read_max_bytes=0)
    for engine in (lake, on_spark):
        assert recorded_alias(engine, "m", CHAMPION) == "3"
        assert recorded_alias(engine, "m", CHALLENGER) == "9"
        assert recorded_alias(engine, "nobody", CHAMPION) is None
    _move(lake, None)  # the alias was removed
    assert recorded_alias(lake, "m", CHAMPION) is None
    read = lake.read(ALIAS_HISTORY)
    assert read.engine == "delta-rs" and read.version == 6  # created empty (0), then one commit per move
    rows = read.table.sort_by("ts").to_pylist()
    assert [r["version"] for r in rows if r["model"] == "m" and r["alias"] == CHAMPION] == ["1", "2", "3", None]
    assert rows[0]["metrics"] == [("auc", 0.7)] and rows[0]["run_date"] == RUN_DATE
    assert rows[0]["ts"].tzinfo is not None
    # Spark reads the rows delta-rs appended with the same values
    assert on_spark.read(ALIAS_HISTORY).table.sort_by("ts").equals(read.table.sort_by("ts"))


@pytest.fixture
def registry(tmp_path):
    """MLflow on SQLite with ``NAME`` registered in two versions."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()
    client.create_registered_model(NAME)
    for _ in range(2):
        client.create_model_version(NAME, source=str(tmp_path / "model"))
    yield client
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_move_alias_records_once_and_reviewer_moves_are_detected_once(lake, registry):
    kwargs = dict(actor="evaluate_models", reason="better", metrics={"log_loss": 0.4}, blueprint="t_notify",
                  blueprint_version="v", run_date=RUN_DATE)
    assert move_alias(lake, name=NAME, alias=CHAMPION, version="1", **kwargs)
    assert not move_alias(lake, name=NAME, alias=CHAMPION, version="1", **kwargs)  # already there
    assert str(registry.get_model_version_by_alias(NAME, CHAMPION).version) == "1"
    assert recorded_alias(lake, NAME, CHAMPION) == "1"
    assert detect_reviewer_moves(lake, NAME, "t_notify", RUN_DATE) == []

    registry.set_registered_model_alias(NAME, CHAMPION, "2")  # a reviewer, in the MLflow UI
    assert detect_reviewer_moves(lake, NAME, "t_notify", RUN_DATE) == ["champion: 1 -> 2"]
    assert detect_reviewer_moves(lake, NAME, "t_notify", RUN_DATE) == []
    assert recorded_alias(lake, NAME, CHAMPION) == "2"
    rows = lake.read(ALIAS_HISTORY).table.sort_by("ts").to_pylist()
    assert [(r["version"], r["previous_version"], r["actor"]) for r in rows] == [
        ("1", None, "evaluate_models"), ("2", "1", "reviewer (detected by evaluate_models)"),
    ]
    assert rows[0]["metrics"] == [("log_loss", 0.4)] and rows[1]["metrics"] == []
