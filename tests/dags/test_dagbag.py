"""Airflow's DagBag: every blueprint becomes a DAG that imports cleanly, light at parse time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
JOBS = ["ingest_events", "join_feedback", "validate_training_set", "train_models",
        "evaluate_models", "tune_policy", "publish_policies"]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_one_dag_per_blueprint(dagbag):
    blueprints = sorted(p.stem for p in (ROOT / "blueprints").glob("*.yaml"))
    assert sorted(dagbag.dag_ids) == [f"looper_{name}" for name in blueprints]


@pytest.mark.parametrize("blueprint", ["notification_send", "feed_layout", "promo_offer"])
def test_dag_shape(dagbag, blueprint):
    dag = dagbag.dags[f"looper_{blueprint}"]
    assert set(dag.tags) == {"looper", f"blueprint:{blueprint}"}
    assert dag.doc_md and "run_date" in dag.params
    assert [t.task_id for t in dag.topological_sort()] == JOBS
    for task in dag.tasks:
        assert task.retries == 2
        assert task.application == str(ROOT / "jobs" / f"{task.task_id}.py")
        assert task.application_args[:2] == ["--blueprint", blueprint]


def test_parsing_imports_nothing_heavy():
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "heavy = [m for m in ('pyspark', 'mlflow', 'sklearn', 'great_expectations', 'pandas') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(DAGS / "looper_blueprints.py")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
