"""One `airflow dags test` run of each non-binary shipped blueprint: regression and multiclass.

The sibling of ``test_dag_run`` (which runs the binary blueprint and checks the loop's
mechanics in depth), at a smaller size: the simulator drives the SDK into a real
redis-server, Airflow runs every task, and the test checks what is particular to the
task type: the labels in silver, the registered model's kind, the promotion on the
task's loss, the logged rewards OPE used, and the hybrid serving of the request by the
published compact model.
"""

from __future__ import annotations

import random
from datetime import date

import mlflow
import numpy as np
import pytest

from looper_common.contracts import policy_store
from looper_common.contracts.blueprint import load_blueprints
from looper_common.lake.engine import Lake
from looper_common.lake.tables import ALIAS_HISTORY, MONITOR_DRIFT, MONITOR_SERVING, SILVER_EXAMPLES
from looper_common.sdk.client import LooperClient
from looper_common.sdk.online import OnlineModels
from looper_common.simulate import Simulator
from looper_common.training.examples import load_training_frame
from looper_common.training.registry import CHAMPION, model_name
from looper_common.training.splits import time_split
from tests.conftest import ROOT
from tests.dags.loop_days import RUN_DATE, dags_test

pytestmark = pytest.mark.integration
START = date(2026, 3, 1)
USERS = 1500
# per blueprint: its objective, the loss the promotion compares, the label values possible
CASES = {
    "watch_minutes": ("minutes_watched", "rmse", None),
    "notification_outcome": ("outcome", "log_loss", {0.0, 1.0, 2.0, 3.0}),
}


@pytest.mark.parametrize("blueprint_name", sorted(CASES))
def test_dags_test_runs_the_loop_for_each_task_type(blueprint_name, tmp_path, redis_url, redis_client):
    label, loss, classes = CASES[blueprint_name]
    blueprints = load_blueprints(ROOT / "blueprints", strict=True)
    blueprint = blueprints[blueprint_name]
    client = LooperClient(redis_url, blueprints=blueprints, random_bits=random.Random(5).getrandbits)
    simulator = Simulator(client, blueprint, users=USERS, seed=5, start=START)
    for day in range(2):
        simulator.run_day(day)
    run_date = RUN_DATE
    result, env = dags_test(f"looper_{blueprint_name}", tmp_path, redis_url, ROOT / "blueprints")
    logs = result.stdout + result.stderr
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    lake = Lake(str(tmp_path / "lake"))
    examples = lake.read(SILVER_EXAMPLES, filters=[("date", "=", run_date)]).table
    values = np.asarray(examples["value"].to_pylist(), dtype="float64")
    assert examples.num_rows > 1000 and set(examples["label"].to_pylist()) == {label}
    if classes is None:  # minutes: a number, zero when nothing was watched
        assert values.min() == 0.0 and (values > 0).mean() > 0.1 and len(np.unique(values)) > 100
    else:  # every class occurs, and only the declared ones
        assert set(values.tolist()) == classes

    mlflow.set_tracking_uri(env["LOOPER_MLFLOW_TRACKING_URI"])
    mlflow.set_registry_uri(env["LOOPER_MLFLOW_TRACKING_URI"])
    name = model_name(blueprint_name, label)
    champion = mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    assert champion.tags["run_date"] == str(run_date)
    history = lake.read(ALIAS_HISTORY, filters=[("model", "=", name)]).table.to_pylist()
    promotion = next(r for r in history if r["alias"] == CHAMPION)
    assert promotion["reason"].startswith("first model: " + loss), promotion["reason"]
    metrics = dict(promotion["metrics"])
    assert metrics[f"challenger.{loss}"] < metrics[f"baseline.{loss}"]
    # OPE averaged the label's rewards: the logged policy's IPS is the holdout's mean reward
    # (minutes, or the reward of the class that happened: 6 for a purchase, -5 for an unsubscribe)
    holdout = time_split(load_training_frame(lake, blueprint, run_date).frame, run_date).holdout
    y = holdout[label].to_numpy(dtype="float64")
    reward = y if classes is None else np.array([0.0, 1.0, 6.0, -5.0])[y.astype(int)]
    assert metrics["ope.logged.ips"] == pytest.approx(reward.mean(), abs=1e-9)

    serving = {r["name"]: r["value"] for r in lake.read(MONITOR_SERVING).table.to_pylist()}
    assert serving["decisions"] == USERS and serving["replay_mismatch"] == serving["propensity_mismatch"] == 0
    # label health ran on the task's labels (calibration has no value yet: day 1 was served the default)
    health = {r["check"]: r["value"] for r in lake.read(MONITOR_DRIFT).table.to_pylist() if r["subject"] == label}
    assert health["label_rate"] == pytest.approx(values.mean()) and "calibration_gap" in health
    assert f"monitor {blueprint_name} {run_date}:" in logs

    active = redis_client.get(policy_store.active_key(blueprint_name)).decode()
    features = simulator.scenario.daily_features(simulator.users, np.random.default_rng(0))[0]
    sdk = LooperClient(redis_url, blueprints=blueprints)
    served = sdk.get_decision(blueprint_name, "u000000", features)
    assert served.policy_version == active and not served.is_default
    assert set(served.scores) == set(blueprint.decision.actions)
    # hybrid serving: the champion's compact model, published with the version, scores the request
    assert blueprint.serving.mode == "hybrid"
    compact = OnlineModels(redis_client).get(blueprint_name, active)
    assert compact is not None, redis_client.hgetall(policy_store.meta_key(blueprint_name, active))
    assert served.scores == pytest.approx(compact.scores(features), abs=1e-6)
    newcomer = sdk.get_decision(blueprint_name, "never_published", features)  # a lookup would serve the default
    assert not newcomer.is_default and newcomer.scores == served.scores
    sdk.close()
    if classes is None:  # the predicted minutes of each row
        # (a regressor may predict a little below 0 for a row nobody watches: not a wrong minute count)
        assert all(-20.0 < s < 200.0 for s in served.scores.values()) and max(served.scores.values()) > 1.0, \
            served.scores
    else:  # an expected reward, within the classes' rewards
        assert all(-5.0 <= s <= 6.0 for s in served.scores.values()), served.scores
