"""The alias history (``gold/alias_history``): moves are recorded, read back on both engines, and
reviewer moves in MLflow (on SQLite) are detected once."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import UTC, date, datetime

import mlflow
import pytest

from looper_common.lake.tables import ALIAS_HISTORY
from looper_common.training.registry import (
    CHALLENGER,
    CHAMPION,
    detect_reviewer_moves,
    move_alias,
    pending_tag,
    record_alias_move,
    recorded_alias,
)
from tests.conftest import ROOT

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


# A job that dies (os._exit, as under kill -9) at one step of move_alias, in a child process.
_DIES = """
import os, sys
from datetime import date
import mlflow
from looper_common.lake.engine import Lake
from looper_common.training import registry
uri, lake_root, step = sys.argv[1:]
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
if step == "after the move":  # MLflow's alias moved, the history row not written
    registry.record_alias_move = lambda *a, **k: os._exit(137)
else:  # the row written, the pending tag not removed
    mlflow.MlflowClient.delete_model_version_tag = lambda *a, **k: os._exit(137)
registry.move_alias(Lake(lake_root), name="looper.t_notify.clicked", alias="champion", version="2",
                    actor="evaluate_models", reason="better on the holdout", metrics={"log_loss": 0.3},
                    blueprint="t_notify", blueprint_version="v", run_date=date(2026, 1, 2))
"""


def _dies_during_move(lake, step: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", _DIES, mlflow.get_tracking_uri(), lake.root, step],
                          env=env, capture_output=True, text=True, timeout=300).returncode


def test_a_job_killed_between_the_alias_move_and_its_record_is_recorded_as_its_move(lake, registry):
    kwargs = dict(actor="evaluate_models", reason="first", metrics={}, blueprint="t_notify",
                  blueprint_version="v", run_date=RUN_DATE)
    assert move_alias(lake, name=NAME, alias=CHAMPION, version="1", **kwargs)
    before = datetime.now(UTC)
    assert _dies_during_move(lake, "after the move") == 137
    assert str(registry.get_model_version_by_alias(NAME, CHAMPION).version) == "2"
    assert recorded_alias(lake, NAME, CHAMPION) == "1"  # MLflow moved, the history did not

    found = detect_reviewer_moves(lake, NAME, "t_notify", RUN_DATE)
    assert found == ["champion: 1 -> 2 (by evaluate_models, recorded late)"]
    rows = lake.read(ALIAS_HISTORY).table.sort_by("ts").to_pylist()
    last = rows[-1]
    assert (last["version"], last["previous_version"], last["actor"]) == ("2", "1", "evaluate_models")
    assert last["reason"].startswith("better on the holdout (recorded by the next run")
    assert before <= last["ts"] <= datetime.now(UTC) and last["metrics"] == [("log_loss", 0.3)]
    assert pending_tag(CHAMPION) not in registry.get_model_version(NAME, "2").tags  # consumed
    assert detect_reviewer_moves(lake, NAME, "t_notify", RUN_DATE) == []
    assert len(rows) == 2


def test_a_job_killed_after_the_record_leaves_one_row_and_the_tag_is_cleared(lake, registry):
    assert _dies_during_move(lake, "after the record") == 137
    assert recorded_alias(lake, NAME, CHAMPION) == "2"
    assert pending_tag(CHAMPION) in registry.get_model_version(NAME, "2").tags
    assert detect_reviewer_moves(lake, NAME, "t_notify", RUN_DATE) == []
    assert pending_tag(CHAMPION) not in registry.get_model_version(NAME, "2").tags
    assert [r["actor"] for r in lake.read(ALIAS_HISTORY).table.to_pylist()] == ["evaluate_models"]
