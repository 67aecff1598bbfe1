"""The state a blueprint's DAG is created in on this machine: unscheduled and unpaused, so a trigger runs only
the day asked for; no catch-up, one run at a time (README, "Airflow UI");
and the demo's `airflow dags test` passes no logical date, so its runs show their real start and duration."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_local_dags_run_only_when_triggered():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.timetables.simple import NullTimetable

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors
    looper = [dag for dag_id, dag in bag.dags.items() if dag_id.startswith("looper_")]
    assert looper
    for dag in looper:
        assert dag.schedule is None and isinstance(dag.timetable, NullTimetable), dag.dag_id  # triggered runs only
        assert dag.is_paused_upon_creation is False, dag.dag_id
        assert dag.catchup is False, dag.dag_id
        assert dag.max_active_runs == 1, dag.dag_id


def test_demo_dag_test_has_no_logical_date_and_the_day_in_the_conf():
    from looper_common.dag_runs import dag_test_command

    command = dag_test_command("notification_send", date(2026, 1, 3))
    test_at = command.index("test")
    assert command[test_at + 1] == "looper_notification_send"
    assert command[test_at + 2:] == ["--conf", json.dumps({"run_date": "2026-01-03"})]
    assert not any(arg.startswith("2026-") for arg in command)  # a logical date would become the start date
