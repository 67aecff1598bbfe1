"""One invalid blueprint file is reported by file name and field while every other blueprint keeps
working: in ``load_blueprints``, the SDK (real redis-server), a job (ingest_events on a real lake)
and the DAG factory (Airflow's DagBag)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from looper_common.contracts.blueprint import BlueprintError, load_blueprints
from looper_common.sdk.client import LooperClient
from looper_common.sdk.requests import LooperError
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
GOOD = ("feed_layout", "notification_send", "promo_offer")
FIELD_ERROR = "broken.yaml: features.0.type: Input should be"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The shipped blueprints plus ``broken.yaml``, whose first feature has an unknown type."""
    folder = tmp_path / "blueprints"
    folder.mkdir()
    for name in GOOD:
        (folder / f"{name}.yaml").write_text((ROOT / "blueprints" / f"{name}.yaml").read_text())
    text = (ROOT / "blueprints" / "notification_send.yaml").read_text()
    broken = text.replace("name: notification_send", "name: broken", 1).replace(
        "{name: days_since_last_visit, type: float}", "{name: days_since_last_visit, type: complex}", 1)
    assert broken != text
    (folder / "broken.yaml").write_text(broken)
    return folder


def test_the_loader_keeps_the_valid_ones_and_names_the_bad_file_and_field(folder, caplog):
    with caplog.at_level(logging.ERROR, logger="looper_common.contracts.blueprint"):
        blueprints = load_blueprints(folder)
    assert sorted(blueprints) == list(GOOD)
    assert list(blueprints.invalid) == ["broken"] and FIELD_ERROR in blueprints.invalid["broken"]
    assert FIELD_ERROR in caplog.text and "every other blueprint keeps working" in caplog.text
    with pytest.raises(BlueprintError, match=FIELD_ERROR):
        load_blueprints(folder, strict=True)


def test_the_sdk_serves_every_valid_blueprint_and_names_the_bad_one(folder, redis_url, redis_client, monkeypatch):
    monkeypatch.setenv("LOOPER_HOME", str(ROOT))
    monkeypatch.setenv("LOOPER_REDIS_URL", redis_url)
    monkeypatch.setenv("LOOPER_BLUEPRINTS_DIR", str(folder))
    client = LooperClient()  # settings and blueprints from the environment, as product code does
    features = {"days_since_last_visit": 2.0, "sessions_last_7d": 3, "push_opt_in": True,
                "country": "us", "platform": "ios"}
    decision = client.get_decision("notification_send", "u1", features)
    assert decision.is_default and decision.default_reason == "no_policy"  # (cold_start: the default explores)
    with pytest.raises(LooperError, match=rf"blueprint 'broken' is invalid: .*{FIELD_ERROR}"):
        client.get_decision("broken", "u1", features)


def test_a_job_runs_for_a_valid_blueprint_and_refuses_the_bad_one_by_file_and_field(
    folder, redis_url, redis_client, tmp_path, monkeypatch
):
    from jobs.ingest_events import main

    monkeypatch.setenv("LOOPER_HOME", str(ROOT))
    monkeypatch.setenv("LOOPER_REDIS_URL", redis_url)
    monkeypatch.setenv("LOOPER_BLUEPRINTS_DIR", str(folder))
    monkeypatch.setenv("LOOPER_LAKE_ROOT", str(tmp_path / "lake"))
    assert main(["--blueprint", "notification_send"]) == 0
    with pytest.raises(SystemExit, match=rf"ingest_events: .*{FIELD_ERROR}"):
        main(["--blueprint", "broken"])


def test_the_dag_factory_builds_every_valid_blueprints_dag(folder, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("LOOPER_HOME", str(ROOT))
    monkeypatch.setenv("LOOPER_BLUEPRINTS_DIR", str(folder))
    dagbag = DagBag(dag_folder=str(ROOT / "dags"))
    assert dagbag.import_errors == {}
    assert sorted(dagbag.dag_ids) == [f"looper_{name}" for name in GOOD]
