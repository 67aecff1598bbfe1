"""One `airflow dags test` run of a blueprint's DAG on small simulated data.

Everything is real: the simulator drives the SDK into a real redis-server, Airflow
runs join_feedback as a spark-submit and the six other tasks as plain Python
processes, MLflow writes to SQLite. The test then checks
the tables, the registry and the Redis entries the run produced.
"""

from __future__ import annotations

import json
import os

import mlflow
import numpy as np
import pytest
from deltalake import DeltaTable

from looper_common.contracts import policy_store
from looper_common.lake.engine import Lake
from looper_common.lake.tables import (
    ALIAS_HISTORY,
    BRONZE_DECISIONS,
    JOIN_STATS,
    MONITOR_ALERTS,
    MONITOR_DRIFT,
    MONITOR_SERVING,
    SILVER_EXAMPLES,
)
from looper_common.sdk.client import LooperClient
from looper_common.sdk.holdback import in_holdback
from looper_common.training.registry import CHAMPION, model_name
from tests.dags.loop_days import RUN_DATE, dags_test, ope_gated, simulate_two_days

pytestmark = pytest.mark.integration
BLUEPRINT = "notification_send"


def test_dags_test_runs_the_whole_loop(tmp_path, redis_url, redis_client):
    folder = tmp_path / "blueprints"
    folder.mkdir()
    (folder / f"{BLUEPRINT}.yaml").write_text(ope_gated(BLUEPRINT))
    blueprints, simulator = simulate_two_days(folder, redis_url, BLUEPRINT)
    run_date = RUN_DATE
    result, env = dags_test(f"looper_{BLUEPRINT}", tmp_path, redis_url, folder)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    output = result.stdout + result.stderr
    # no task is a spark-submit: the join is a client of the session's Spark Connect server (conftest)
    assert "Spark-Submit cmd" not in output
    assert output.count(f"Spark: a client of the Spark Connect server {os.environ['LOOPER_SPARK_CONNECT']}") == 1

    lake = Lake(str(tmp_path / "lake"))  # delta-rs only
    assert lake.read(BRONZE_DECISIONS).table.num_rows == 6000
    examples = lake.read(SILVER_EXAMPLES, filters=[("date", "=", run_date)]).table
    assert set(examples["label"].to_pylist()) == {"clicked", "unsubscribed"}
    stats = lake.read(JOIN_STATS).table.to_pylist()
    assert stats[0]["matured_decisions"] == examples.num_rows // 2 > 1000

    mlflow.set_tracking_uri(env["LOOPER_MLFLOW_TRACKING_URI"])
    mlflow.set_registry_uri(env["LOOPER_MLFLOW_TRACKING_URI"])
    name = model_name(BLUEPRINT, "clicked")
    champion = mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    assert champion.tags["run_date"] == str(run_date)
    history = lake.read(ALIAS_HISTORY, filters=[("model", "=", name)]).table.to_pylist()
    assert {(r["alias"], r["actor"]) for r in history} >= {
        ("challenger", "train_models"),
        (CHAMPION, "evaluate_models"),
    }
    # the jobs appended their moves with delta-rs, and read their examples with it (no JVM)
    commits = DeltaTable(lake.path(ALIAS_HISTORY)).history()
    assert all(c.get("clientVersion", "").startswith("delta-rs") for c in commits), commits
    # the examples were written by the Spark Connect server's Spark
    joined = [c for c in DeltaTable(lake.path(SILVER_EXAMPLES)).history() if c.get("operation") == "WRITE"]
    assert joined and all(c.get("engineInfo", "").startswith("Apache-Spark") for c in joined), joined
    assert "read by delta-rs" in result.stdout + result.stderr
    # the OPE gate promoted it: the DR lift's lower bound over the logged policy is above min_lift
    promotion = next(r for r in history if r["alias"] == CHAMPION)
    assert "DR lift over logged" in promotion["reason"], promotion["reason"]
    metrics = dict(promotion["metrics"])  # an Arrow map reads as (key, value) pairs
    assert -1.0 < metrics["ope.challenger.lift_dr_lower"] <= metrics["ope.challenger.lift_dr"]
    # judged on the holdout: the newest 20% of the run date's matured decisions (about 600)
    assert metrics["ope.logged.ess"] > 500 and metrics["ope.challenger.max_weight"] > 1
    # tune_policy tuned the champion's params; the evaluate and tune runs left their reports
    params = json.loads(champion.tags["policy_params"])
    assert champion.tags["policy_tuned_date"] == str(run_date) and {"threshold", "epsilon"} <= set(params)
    runs = mlflow.search_runs(experiment_names=[f"looper/{BLUEPRINT}"], output_format="list")
    tune_runs = [r for r in runs if r.data.tags.get("job") == "tune_policy"]
    assert len(tune_runs) == 1 + 16  # the parent and one nested run per trial
    artifacts = {a.path for r in runs for a in mlflow.MlflowClient().list_artifacts(r.info.run_id)}
    assert {"report_policy.html", "pareto.png", "report_clicked.html", "dashboard.html"} <= artifacts

    # the monitor ran last: serving is healthy, the inputs did not drift, no alert on clean traffic
    serving = {r["name"]: r["value"] for r in lake.read(MONITOR_SERVING).table.to_pylist()}
    assert serving["decisions"] == 3000 and serving["replay_mismatch"] == serving["propensity_mismatch"] == 0
    drift = [r for r in lake.read(MONITOR_DRIFT).table.to_pylist() if r["check"] == "feature_psi"]
    assert len(drift) == 5 and all(r["value"] is not None and r["value"] < 0.1 for r in drift), drift
    assert lake.read(MONITOR_ALERTS).table.num_rows == 0
    assert f"monitor {BLUEPRINT} {run_date}: alerts 0" in result.stdout + result.stderr

    active = redis_client.get(policy_store.active_key(BLUEPRINT)).decode()
    assert active.startswith("20260302-m") and "-p" in active  # tuned params are part of the version
    meta = redis_client.hgetall(policy_store.meta_key(BLUEPRINT, active))
    assert json.loads(meta[b"policy_params"]) == params
    assert json.loads(meta[b"exploration"])["epsilon"] == pytest.approx(params["epsilon"])
    entries = list(redis_client.scan_iter(match=policy_store.entry_key(BLUEPRINT, active, "*"), count=10_000))
    units = [key.decode().rsplit(":", 1)[1] for key in entries if not key.decode().endswith(("meta", "history"))]
    assert len(units) >= 2900  # every unit seen so far has an entry
    assert 0 < redis_client.ttl(entries[0]) <= 7 * 86400
    features = simulator.scenario.daily_features(simulator.users, np.random.default_rng(0))[0]
    unit = next(u for u in units if not in_holdback(blueprints[BLUEPRINT], u))  # the holdback gets the default
    served = LooperClient(redis_url, blueprints=blueprints).get_decision(BLUEPRINT, unit, features)
    assert served.policy_version == active and not served.is_default
