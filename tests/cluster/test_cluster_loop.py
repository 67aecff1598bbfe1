"""The loop on the cluster in a box, unchanged: two simulated days of a blueprint, each
DAG run triggered through Airflow's REST API and run by its scheduler (LocalExecutor on
PostgreSQL), join_feedback's executors in the two Spark workers, the lake on the S3
server, MLflow's server on PostgreSQL with its artifacts on S3, the policies and the
event streams on Redis Cluster.

`scripts/cluster.sh up` starts the stack under var/cluster-test/ (its own state, the same
ports as `make cluster-up`, so it refuses to run next to a running stack) and `down`
stops it whatever the test's outcome. Assertions follow tests/dags/test_dag_run.py, plus
a rollback through `looper rollback` served by the SDK.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date, timedelta

import boto3
import mlflow
import numpy as np
import psycopg2
import pytest

from looper_common.contracts import policy_store
from looper_common.contracts.blueprint import load_blueprints
from looper_common.contracts.config import load_settings
from looper_common.contracts.redis_conn import connect
from looper_common.lake.engine import Lake
from looper_common.lake.tables import ALIAS_HISTORY, BRONZE_DECISIONS, JOIN_STATS, SILVER_EXAMPLES
from looper_common.sdk.client import LooperClient
from looper_common.simulate import Simulator
from looper_common.training.registry import CHAMPION, model_name
from tests.conftest import ROOT

pytestmark = pytest.mark.cluster
ENV = "cluster-local"
BLUEPRINT = "notification_send"
DAG_ID = f"looper_{BLUEPRINT}"
START = date(2026, 3, 1)
STATE = ROOT / "var" / "cluster-test"
AIRFLOW = "http://127.0.0.1:8790"
RUN_TIMEOUT_S = 3600


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _cluster(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts" / "cluster.sh"), command], env=env,
                          capture_output=True, text=True, timeout=1800)


def _box_env(env: dict[str, str]) -> dict[str, str]:
    """The variables `scripts/cluster.sh env` exports (the box's S3 keys among them)."""
    out = _cluster("env", env)
    assert out.returncode == 0, out.stderr
    found = {}
    for line in out.stdout.splitlines():
        if line.startswith("export "):
            found.update(item.split("=", 1) for item in line[len("export "):].split() if "=" in item)
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The stack up with one blueprint (a copy of the shipped one), and down after the module."""
    if _listening(7077):
        pytest.fail("a cluster in a box already runs on 127.0.0.1:7077: `make cluster-down` first")
    folder = tmp_path_factory.mktemp("cluster") / "blueprints"
    folder.mkdir()
    text = (ROOT / "blueprints" / f"{BLUEPRINT}.yaml").read_text()
    # promoted by the OPE gate with the line of test_dag_run.py; a yearly schedule, so unpausing
    # the DAG schedules no run of its own (the first interval ends 2027-01-01): only the test's
    assert "gate: metric, min_lift: 0.0" in text and 'schedule: "@daily"' in text
    text = text.replace("gate: metric, min_lift: 0.0", "gate: ope, min_lift: -1.0").replace(
        'schedule: "@daily"', 'schedule: "0 0 1 1 *"')
    (folder / f"{BLUEPRINT}.yaml").write_text(text)
    shutil.rmtree(STATE, ignore_errors=True)
    os.environ.pop("LOOPER_SPARK_CONNECT", None)  # the jobs submit to the box's master (conftest sets a local server)
    env = {**os.environ, "LOOPER_ENV": ENV, "LOOPER_HOME": str(ROOT), "LOOPER_CLUSTER_DIR": str(STATE),
           "LOOPER_BLUEPRINTS_DIR": str(folder)}
    started = time.monotonic()
    try:
        up = _cluster("up", env)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        print(f"cluster-up: {time.monotonic() - started:.0f} s")
        saved = dict(os.environ)
        box = _box_env(env)  # what `eval "$(scripts/cluster.sh env)"` gives a user's shell
        env.update(box)
        os.environ.update(box)
        yield env, folder
    finally:
        if "saved" in locals():
            os.environ.clear()
            os.environ.update(saved)
        down = _cluster("down", env)
        print(down.stdout[-2000:], down.stderr[-2000:], file=sys.stderr)


def _api(method: str, path: str, token: str | None = None, body: dict | None = None) -> dict:
    """One call of the api-server; a GET that times out (a busy machine) is asked again, up to 10 times."""
    for attempt in range(10):
        try:
            return _call(method, path, token, body)
        except (TimeoutError, urllib.error.URLError) as err:
            if method != "GET" or attempt == 9 or (isinstance(err, urllib.error.HTTPError)):
                raise
            time.sleep(5)
    raise AssertionError("unreachable")


def _call(method: str, path: str, token: str | None, body: dict | None) -> dict:
    request = urllib.request.Request(f"{AIRFLOW}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"{}")


def _token() -> str:
    """A JWT from the simple auth manager (every user admin on the in-box stack: no credentials)."""
    return _api("GET", "/auth/token")["access_token"]


def _wait_for_dag(token: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _api("GET", f"/api/v2/dags/{DAG_ID}", token)
            return
        except urllib.error.HTTPError as err:
            if err.code != 404 or time.monotonic() > deadline:
                raise
        time.sleep(5)


def _task_logs(run_id: str) -> str:
    """Every task's log of a run, as the workers wrote them under $AIRFLOW_HOME/logs."""
    folder = STATE / "airflow" / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    logs = sorted(folder.rglob("*.log"))
    return "\n".join(f"== {p.relative_to(folder)}\n{p.read_text(errors='replace')}" for p in logs)


def _run_day(token: str, day: date) -> str:
    """Trigger the DAG for ``day`` through the REST API; wait for the scheduler to finish it."""
    run_id = f"cluster-{day}"
    _api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", token, {
        "dag_run_id": run_id, "logical_date": f"{day}T00:00:00Z", "conf": {"run_date": str(day)}})
    deadline = time.monotonic() + RUN_TIMEOUT_S
    state = "queued"
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(10)
        state = _api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", _token())["state"]
    if state != "success":
        tasks = _api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", _token())["task_instances"]
        states = {t["task_id"]: t["state"] for t in tasks}
        pytest.fail(f"run {run_id}: {state}, tasks {states}\n{_task_logs(run_id)[-8000:]}")
    return run_id


def test_two_days_on_the_cluster(stack):
    env, folder = stack
    for var in ("LOOPER_BLUEPRINTS_DIR", "LOOPER_CLUSTER_DIR"):
        os.environ[var] = env[var]
    settings = load_settings(ENV, home=ROOT)
    assert settings.lake_root.startswith("s3a://") and settings.redis.cluster
    blueprints = load_blueprints(folder)
    client = LooperClient(settings.redis.url, blueprints=blueprints, cluster=True,
                          random_bits=random.Random(11).getrandbits)
    simulator = Simulator(client, blueprints[BLUEPRINT], users=3000, seed=11, start=START)

    token = _token()
    _wait_for_dag(token)
    _api("PATCH", f"/api/v2/dags/{DAG_ID}", token, {"is_paused": False})
    runs, started = [], time.monotonic()
    for day in range(2):
        simulator.run_day(day)
        runs.append(_run_day(_token(), START + timedelta(days=day)))
    print(f"two DAG runs on the cluster: {time.monotonic() - started:.0f} s")
    run_date = START + timedelta(days=1)

    # join_feedback was a spark-submit to the standalone master; its executors ran in both workers
    logs = _task_logs(runs[-1])
    assert "spark://127.0.0.1:7077" in logs and "Spark-Submit cmd" in logs
    for worker in (1, 2):
        apps = list((STATE / f"spark-worker-{worker}").glob("app-*/*/stderr"))
        assert apps, f"no executor ran in spark-worker-{worker}"

    # the lake is on the object store, read here through the same URL with delta-rs
    lake = Lake(settings.lake_root, storage_options=settings.lake_storage_options)
    assert lake.read(BRONZE_DECISIONS).table.num_rows == 6000
    examples = lake.read(SILVER_EXAMPLES, filters=[("date", "=", run_date)]).table
    assert set(examples["label"].to_pylist()) == {"clicked", "unsubscribed"}
    stats = lake.read(JOIN_STATS, filters=[("date", "=", run_date)]).table.to_pylist()
    assert stats[0]["matured_decisions"] == examples.num_rows // 2 > 1000
    s3 = boto3.client("s3", endpoint_url=settings.lake_storage_options["AWS_ENDPOINT_URL"])
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="looper")
            for o in page.get("Contents", [])]
    assert any(k.startswith("lake/silver/examples/") and k.endswith(".parquet") for k in keys)
    assert any(k.startswith("mlflow/") for k in keys)  # MLflow's artifacts, through its server

    # MLflow's server registered the champion in PostgreSQL
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_registry_uri(settings.mlflow.tracking_uri)
    name = model_name(BLUEPRINT, "clicked")
    champion = mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    assert champion.tags["run_date"] == str(run_date)
    with psycopg2.connect(host="127.0.0.1", port=5440, user="looper", dbname="mlflow",
                          password=os.environ.get("LOOPER_PG_PASSWORD", "looper-local")) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM model_versions WHERE name = %s", (name,))
            assert cur.fetchone()[0] >= 1
    history = lake.read(ALIAS_HISTORY, filters=[("model", "=", name)]).table.to_pylist()
    moves = {(r["alias"], r["actor"]) for r in history}
    assert moves >= {("challenger", "train_models"), (CHAMPION, "evaluate_models")}
    promotion = [r for r in history if r["alias"] == CHAMPION][-1]
    assert "DR lift over logged" in promotion["reason"], promotion["reason"]
    params = json.loads(champion.tags["policy_params"])
    assert champion.tags["policy_tuned_date"] == str(run_date) and {"threshold", "epsilon"} <= set(params)
    runs_logged = mlflow.search_runs(experiment_names=[f"looper/{BLUEPRINT}"], output_format="list")
    artifacts = {a.path for r in runs_logged for a in mlflow.MlflowClient().list_artifacts(r.info.run_id)}
    assert {"report_policy.html", "pareto.png", "report_clicked.html", "dashboard.html"} <= artifacts

    # the published policy, on Redis Cluster, served by the SDK
    redis = connect(settings.redis.url, password=None, cluster=True)
    active = redis.get(policy_store.active_key(BLUEPRINT)).decode()
    assert active.startswith("20260302-m") and "-p" in active
    meta = redis.hgetall(policy_store.meta_key(BLUEPRINT, active))
    assert json.loads(meta[b"policy_params"]) == params
    entries = list(redis.scan_iter(match=policy_store.entry_key(BLUEPRINT, active, "*"), count=10_000))
    assert len(entries) >= 2900
    units = [key.decode().rsplit(":", 1)[1] for key in entries]
    features = simulator.scenario.daily_features(simulator.users, np.random.default_rng(0))[0]
    served = LooperClient(settings.redis.url, blueprints=blueprints, cluster=True).get_decision(
        BLUEPRINT, units[0], features)
    assert served.policy_version == active and not served.is_default

    # rollback: `looper rollback` on the cluster; the SDK serves the first day's version again
    previous = redis.lrange(policy_store.history_key(BLUEPRINT), 0, 0)[0].decode()
    assert previous.startswith("20260301-")
    result = subprocess.run([sys.executable, "-m", "looper_common.cli", "rollback", "--blueprint", BLUEPRINT,
                             "--env", ENV], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert redis.get(policy_store.active_key(BLUEPRINT)).decode() == previous
    served = LooperClient(settings.redis.url, blueprints=blueprints, cluster=True).get_decision(
        BLUEPRINT, units[0], features)
    assert served.policy_version == previous
    assert any(r["actor"].startswith("looper rollback") for r in lake.read(ALIAS_HISTORY).table.to_pylist())

    # Airflow's own metadata is in PostgreSQL: both runs, triggered through the API
    with psycopg2.connect(host="127.0.0.1", port=5440, user="looper", dbname="airflow",
                          password=os.environ.get("LOOPER_PG_PASSWORD", "looper-local")) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT run_id, state, run_type FROM dag_run WHERE dag_id = %s ORDER BY run_id", (DAG_ID,))
            assert cur.fetchall() == [(r, "success", "manual") for r in runs]
