"""``looper promote``: a reviewer's alias move, made in MLflow (on SQLite) and recorded in
``gold/alias_history`` at the time it was made; evaluate_models then finds nothing to add."""

from __future__ import annotations

from datetime import UTC, date, datetime

import mlflow
import pytest

from looper_common.cli import main as looper
from looper_common.lake.engine import Lake
from looper_common.lake.tables import ALIAS_HISTORY
from looper_common.training.registry import CHAMPION, detect_reviewer_moves
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
NAME = "looper.notification_send.clicked"


@pytest.fixture
def env(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()
    client.create_registered_model(NAME)
    for _ in range(2):
        client.create_model_version(NAME, source=str(tmp_path / "model"))
    for key, value in {"LOOPER_HOME": str(ROOT), "LOOPER_MLFLOW_TRACKING_URI": uri,
                       "LOOPER_LAKE_ROOT": str(tmp_path / "lake")}.items():
        monkeypatch.setenv(key, value)
    yield client, Lake(str(tmp_path / "lake"))
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_a_promotion_is_made_in_mlflow_and_recorded_when_made(env, capsys):
    client, lake = env
    before = datetime.now(UTC)
    assert looper(["promote", "--blueprint", "notification_send", "--label", "clicked", "--version", "2",
                   "--reason", "reviewed the OPE report"]) == 0
    after = datetime.now(UTC)
    assert capsys.readouterr().out.strip() == f"{NAME}: champion -> version 2"
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == "2"
    [row] = lake.read(ALIAS_HISTORY).table.to_pylist()
    assert (row["model"], row["alias"], row["version"], row["reason"]) == (
        NAME, CHAMPION, "2", "reviewed the OPE report")
    assert row["actor"].startswith("reviewer ") and row["actor"].endswith("(looper promote)")
    assert before <= row["ts"] <= after
    # the next evaluate_models has nothing to detect
    assert detect_reviewer_moves(lake, NAME, "notification_send", date(2026, 1, 2)) == []


def test_a_promotion_of_an_unknown_label_or_version_is_refused_and_not_recorded(env, capsys):
    client, lake = env
    assert looper(["promote", "--blueprint", "notification_send", "--label", "nope", "--version", "1",
                   "--reason", "x"]) == 2
    assert "no label 'nope'" in capsys.readouterr().err
    assert looper(["promote", "--blueprint", "notification_send", "--label", "clicked", "--version", "9",
                   "--reason", "x"]) == 1
    assert capsys.readouterr().err.startswith("looper promote: error:")
    assert lake.read(ALIAS_HISTORY).table.num_rows == 0
