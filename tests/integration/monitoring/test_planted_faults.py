"""Simulated days through the real SDK, Redis and ingestion, each fault planted on a known day.

The monitor must alert on exactly the planted check and day, and on nothing in a clean
run of the same length. No join runs here (no Spark): the checks that need matured
examples report nothing, the rest see the bronze tables and Redis.
"""

from __future__ import annotations

import random
from datetime import date

import pandas as pd
import pytest

from looper_common.contracts.blueprint import load_blueprints
from looper_common.ingest.streams import event_streams, ingest_events
from looper_common.lake.engine import Lake
from looper_common.lake.tables import MONITOR_ALERTS, MONITOR_DRIFT, MONITOR_SERVING
from looper_common.monitoring.monitor import record_day
from looper_common.monitoring.report import day_line
from looper_common.publishing.redis_policy import publish_policy
from looper_common.sdk.client import LooperClient
from looper_common.simulate import Simulator
from looper_common.simulate.faults import DefaultShare, Faults, FeatureDrop, FeatureShift
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
BLUEPRINT = "notification_send"
START = date(2026, 3, 1)
DAYS = 4
FAULTS = {
    "clean": (Faults(), set()),
    "shift": (Faults(shift=FeatureShift("days_since_last_visit", day=3, factor=3.0)), {(3, "feature_psi")}),
    "stop_feedback": (Faults(stop_feedback_day=2), {(2, "feedback_age_h")}),
    "drop": (Faults(drop=FeatureDrop("country", day=3)), {(3, "feature_missing")}),
    "default": (Faults(default=DefaultShare(0.5, day=3)), {(3, "default_share")}),
}


def _run(tmp_path, redis_url, redis_client, faults: Faults):
    for key in redis_client.scan_iter(match=f"looper:*{BLUEPRINT}*"):
        redis_client.delete(key)
    blueprints = load_blueprints(ROOT / "blueprints")
    blueprint = blueprints[BLUEPRINT]
    client = LooperClient(redis_url, blueprints=blueprints, pointer_ttl_s=0.0,
                          random_bits=random.Random(5).getrandbits)
    simulator = Simulator(client, blueprint, users=1200, seed=5, start=START, faults=faults)
    lake = Lake(str(tmp_path / "lake"))
    lake.ensure_tables()
    runs = {}
    for day in range(DAYS):
        simulator.run_day(day)
        ingest_events(redis_client, lake, blueprints, streams=event_streams(redis_client, BLUEPRINT))
        if day == 0:  # a policy from day 1 on: send to every other unit
            units = pd.DataFrame({"unit_id": simulator.unit_ids,
                                  "action": ["send" if i % 2 else "skip" for i in range(len(simulator.unit_ids))],
                                  "score_send": 0.1, "score_skip": 0.0})
            publish_policy(redis_client, blueprint, units, version="20260301-m1-test", ttl_seconds=86400)
        else:
            runs[day] = record_day(lake, blueprint, simulator.start.replace(day=1 + day), redis_client)
    return lake, runs


@pytest.mark.parametrize("fault", list(FAULTS))
def test_the_monitor_alerts_on_exactly_the_planted_fault(tmp_path, redis_url, redis_client, fault):
    faults, expected = FAULTS[fault]
    lake, runs = _run(tmp_path, redis_url, redis_client, faults)
    raised = {(day, alert.check) for day, run in runs.items() for alert in run.alerts}
    assert raised == expected, {day: [a.message for a in run.alerts] for day, run in runs.items()}
    # the alerts are rows of monitoring/alerts, and every day has its drift and serving rows
    rows = {(r["date"].day - 1, r["check"]) for r in lake.read(MONITOR_ALERTS).table.to_pylist()}
    assert rows == expected
    for run in runs.values():
        assert run.value("replay_mismatch") == 0 and run.value("propensity_mismatch") == 0
        assert run.value("decisions") == 1200
    served = lake.read(MONITOR_SERVING).table.to_pylist()
    assert {r["date"] for r in served} == {START.replace(day=1 + d) for d in runs}
    drift = lake.read(MONITOR_DRIFT).table.to_pylist()
    assert {r["subject"] for r in drift if r["check"] == "feature_psi"} == {
        "days_since_last_visit", "sessions_last_7d", "push_opt_in", "country", "platform"}


def test_a_rerun_of_a_day_replaces_its_rows(tmp_path, redis_url, redis_client):
    lake, runs = _run(tmp_path, redis_url, redis_client, FAULTS["default"][0])
    before = lake.read(MONITOR_SERVING).table.num_rows
    record_day(lake, load_blueprints(ROOT / "blueprints")[BLUEPRINT], date(2026, 3, 4), redis_client)
    assert lake.read(MONITOR_SERVING).table.num_rows == before
    assert len(lake.read(MONITOR_ALERTS).table) == 1
    line = day_line(lake, BLUEPRINT, date(2026, 3, 4))
    # the alert counts the unintended defaults (0.449); the line's share includes the 5% holdback's
    assert line.startswith("alerts: critical default_share=0.449") and "default share 50.4%" in line, line
    clean = day_line(lake, BLUEPRINT, date(2026, 3, 3))
    assert clean.startswith("alerts: none; default share "), clean
    assert 2 < float(clean.split("default share ")[1].split("%")[0]) < 8, clean  # only the holdback's units


def _job_environment(monkeypatch, tmp_path, lake: Lake, redis_url: str) -> None:
    """What jobs/monitor_blueprint.py reads: this test's lake, Redis and MLflow store."""
    for var, value in {"LOOPER_LAKE_ROOT": lake.root, "LOOPER_REDIS_URL": redis_url,
                       "LOOPER_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
                       "LOOPER_MLFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts"), "LOOPER_HOME": str(ROOT)}.items():
        monkeypatch.setenv(var, value)


def test_a_warning_only_day_does_not_fail_the_monitor_job(tmp_path, redis_url, redis_client, monkeypatch, capsys):
    from jobs.monitor_blueprint import main

    # a fifth of the units without an entry: above default_share's warn level (0.1), below critical (0.3)
    lake, _ = _run(tmp_path, redis_url, redis_client, Faults(default=DefaultShare(0.2, day=3)))
    _job_environment(monkeypatch, tmp_path, lake, redis_url)
    assert main(["--blueprint", BLUEPRINT, "--run-date", "2026-03-04"]) == 0
    [row] = lake.read(MONITOR_ALERTS).table.to_pylist()
    assert (row["check"], row["severity"], row["threshold"]) == ("default_share", "warning", 0.1)
    assert 0.1 < row["value"] < 0.3
    out, err = capsys.readouterr()
    assert "monitor notification_send 2026-03-04: alerts 1 (0 critical): default_share;" in out
    assert "critical alert(s)" not in err


def test_the_monitor_job_fails_on_a_critical_alert_and_logs_its_dashboard(tmp_path, redis_url, redis_client,
                                                                         monkeypatch, capsys):
    import mlflow

    from jobs.monitor_blueprint import main

    lake, _ = _run(tmp_path, redis_url, redis_client, FAULTS["default"][0])
    _job_environment(monkeypatch, tmp_path, lake, redis_url)
    assert main(["--blueprint", BLUEPRINT, "--run-date", "2026-03-03"]) == 0  # a clean day
    for _ in range(2):  # a rerun logs to the same MLflow run and rewrites the same page
        assert main(["--blueprint", BLUEPRINT, "--run-date", "2026-03-04"]) == 1
    out, err = capsys.readouterr()
    assert "monitor_blueprint: 1 critical alert(s) for notification_send on 2026-03-04: critical: default_share" in err
    page = tmp_path / "monitoring" / BLUEPRINT / "2026-03-04" / "dashboard.html"
    assert f"dashboard {page}" in out
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 8 and "default_share" in text and "critical" in text
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=[f"looper/{BLUEPRINT}"], output_format="list")
    assert sorted(r.data.tags["run_date"] for r in runs) == ["2026-03-03", "2026-03-04"]
    [logged] = [r for r in runs if r.data.tags["run_date"] == "2026-03-04"]
    assert logged.data.tags["job"] == "monitor_blueprint" and logged.data.metrics["alerts_critical"] == 1
    assert [a.path for a in mlflow.MlflowClient().list_artifacts(logged.info.run_id)] == ["dashboard.html"]
