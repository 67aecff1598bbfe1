"""scripts/demo.py's monitor plumbing: --fault to a simulator fault, a monitor-only DAG failure told apart."""

from __future__ import annotations

from datetime import date

import pytest

from looper_common.contracts.blueprint import load_blueprints
from looper_common.dag_runs import monitor_alerted
from looper_common.monitoring.alerts import Alert
from looper_common.monitoring.monitor import MonitorRun
from tests.conftest import ROOT
from tests.unit.test_demo_verdict import demo

BLUEPRINTS = load_blueprints(ROOT / "blueprints")


@pytest.mark.parametrize("blueprint", ["notification_send", "feed_layout", "promo_offer"])
@pytest.mark.parametrize("fault", ["shift", "drop", "stop_feedback", "default"])
def test_every_fault_is_planted_on_the_given_day_on_a_feature_the_blueprint_has(blueprint, fault):
    faults = demo.demo_faults(fault, 2, blueprint)
    faults.check(BLUEPRINTS[blueprint])  # the feature exists and has the right type
    planted = {"shift": faults.shift, "drop": faults.drop, "default": faults.default}
    if fault == "stop_feedback":
        assert faults.stop_feedback_day == 2 and not any(planted.values())
    else:
        assert planted[fault].day == 2
        assert [name for name, f in planted.items() if f is not None] == [fault]


def test_no_fault_and_a_feature_fault_on_an_unknown_blueprint():
    assert demo.demo_faults(None, 4, "notification_send") is None
    assert demo.demo_faults("default", 4, "my_blueprint").default.share == 0.5  # needs no feature
    with pytest.raises(SystemExit, match="--fault shift: no feature known for my_blueprint"):
        demo.demo_faults("shift", 4, "my_blueprint")


def test_a_dag_run_failed_by_a_critical_alert_is_told_apart_from_other_failures(tmp_path):
    run = MonitorRun("notification_send", date(2026, 1, 3), (date(2025, 12, 27), date(2026, 1, 2)),
                     alerts=[Alert("default_share", None, 0.45, 0.3, "critical")])
    alerted = tmp_path / "alerted.log"
    # what jobs/monitor_blueprint.py prints to stderr, inside Airflow's task log
    alerted.write_text("[2026-01-03T00:00:00Z] {subprocess.py:93} INFO - "
                       f"monitor_blueprint: {run.critical_message()}\nTask failed with exit code 1\n")
    assert monitor_alerted(alerted)
    crashed = tmp_path / "crashed.log"
    crashed.write_text("train_models: ValueError: no examples\nTask failed with exit code 1\n")
    assert not monitor_alerted(crashed)
