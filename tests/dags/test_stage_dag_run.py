"""One `airflow dags test` run of a stage DAG (``dags.layout: stage``): two blueprints, one process per stage.

Real components as in ``test_dag_run``: the simulator drives the SDK into redis-server,
the stages run ``jobs/run_stage.py`` for both blueprints, MLflow on SQLite, the join on the
session's Spark Connect server. One blueprint has traffic; the other has none, so its
stages fail where an empty day cannot go on: it is dropped from the later stages, the
other goes through to a published policy, and the run fails naming it.
"""

from __future__ import annotations

import re

import mlflow
import pytest
import yaml

from looper_common.contracts import policy_store
from looper_common.lake.engine import Lake
from looper_common.lake.tables import MONITOR_SERVING, SILVER_EXAMPLES
from looper_common.training.registry import CHAMPION, model_name
from tests.dags.loop_days import RUN_DATE, dags_test, ope_gated, simulate_two_days

pytestmark = pytest.mark.integration
LIVE, EMPTY = "notification_send", "quiet_send"
STAGES = ["join_feedback", "validate_training_set", "train_models", "evaluate_models", "tune_policy",
          "publish_policies", "monitor_blueprint"]


def test_a_stage_dag_runs_each_stage_once_for_every_blueprint(tmp_path, redis_url, redis_client):
    folder = tmp_path / "blueprints"
    folder.mkdir()
    text = ope_gated(LIVE)
    (folder / f"{LIVE}.yaml").write_text(text)
    (folder / f"{EMPTY}.yaml").write_text(yaml.safe_dump({**yaml.safe_load(text), "name": EMPTY}))
    simulate_two_days(folder, redis_url, LIVE)
    run_date = RUN_DATE
    result, env = dags_test("looper_stages_daily", tmp_path, redis_url, folder, LOOPER_DAGS_LAYOUT="stage")
    output = result.stdout + result.stderr
    # each stage ran once, as one process for the blueprints still in the run
    ran = re.findall(r"(\w+) for (\d) blueprint\(s\): (\w+(?:, \w+)*)", output)
    stages = {job: names.split(", ") for job, _, names in ran}
    assert [job for job, _, _ in ran] == ["ingest_events", *STAGES], ran
    assert stages["ingest_events"] == stages["join_feedback"] == sorted([LIVE, EMPTY]), stages
    assert stages["monitor_blueprint"] == [LIVE]  # the empty one was dropped where it failed
    dropped = next(job for job in STAGES if EMPTY not in stages[job])
    failed_at = STAGES[STAGES.index(dropped) - 1]
    assert re.search(rf"{failed_at}: {EMPTY} failed \(", output), output[-4000:]
    # the run fails, naming the blueprint and the stage
    assert result.returncode != 0, output[-4000:]

    lake = Lake(str(tmp_path / "lake"))
    examples = lake.read(SILVER_EXAMPLES, filters=[("date", "=", run_date)]).table
    assert set(examples["blueprint"].to_pylist()) == {LIVE}
    assert {r["blueprint"] for r in lake.read(MONITOR_SERVING).table.to_pylist()} == {LIVE}
    mlflow.set_tracking_uri(env["LOOPER_MLFLOW_TRACKING_URI"])
    mlflow.set_registry_uri(env["LOOPER_MLFLOW_TRACKING_URI"])
    champion = mlflow.MlflowClient().get_model_version_by_alias(model_name(LIVE, "clicked"), CHAMPION)
    assert champion.tags["run_date"] == str(run_date)
    active = redis_client.get(policy_store.active_key(LIVE)).decode()
    assert active.startswith("20260302-m")
    assert redis_client.get(policy_store.active_key(EMPTY)) is None
