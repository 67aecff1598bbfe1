"""
### Looper: one DAG per blueprint

Every file in `blueprints/` becomes a DAG `looper_<blueprint>` that closes the loop for
one decision point, over one data interval (the run date):

`ingest_events` → `join_feedback` → `validate_training_set` → `train_models` →
`evaluate_models` → `tune_policy` → `publish_policies`

Each task is a `spark-submit` of the job of the same name in `jobs/` (the Spark
master comes from the `spark_default` connection; `local[*]` on the embedded stack).
To (re)process a given day from the UI: *Trigger DAG* and set `run_date`
(YYYY-MM-DD); left empty, the run's logical date is used. Every job is idempotent
for its run date.
"""

from __future__ import annotations

import glob
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, Param

HOME = Path(os.environ.get("LOOPER_HOME") or Path(__file__).resolve().parent.parent)
JOBS = ("ingest_events", "join_feedback", "validate_training_set", "train_models",
        "evaluate_models", "tune_policy", "publish_policies")
RUN_DATE = "{{ params.run_date or ds }}"
# the jobs read the same folder: LOOPER_BLUEPRINTS_DIR, else blueprints/ (relative to LOOPER_HOME)
BLUEPRINTS = HOME / os.environ.get("LOOPER_BLUEPRINTS_DIR", "blueprints")


def _blueprints() -> dict[str, dict]:
    """Blueprint name -> raw YAML (only what the DAG needs; validation happens in the jobs)."""
    found = {}
    for path in sorted(glob.glob(str(BLUEPRINTS / "*.y*ml"))):
        with open(path) as handle:
            data = yaml.safe_load(handle) or {}
        found[data.get("name", Path(path).stem)] = data
    return found


def _spark_conf() -> dict[str, str]:
    """The environment's Spark settings (``spark.conf`` of ``conf/<env>.yaml``) and the venv's Python.

    The driver's Python is ``scripts/spark-python``, which runs ``LOOPER_PYTHON`` (set in
    each task's environment to this interpreter) with the installed pyspark first.

    Given to spark-submit because some only act when the driver JVM is launched
    (``spark.driver.memory``, ``spark.driver.extraJavaOptions``): by the time a job
    builds its session, the JVM spark-submit started is already running.
    """
    path = HOME / "conf" / f"{os.environ.get('LOOPER_ENV') or 'local'}.yaml"
    settings = {}
    if path.is_file():
        with open(path) as handle:
            settings = (yaml.safe_load(handle) or {}).get("spark", {}).get("conf") or {}
    return {
        **{str(key): str(value).replace("{home}", str(HOME)) for key, value in settings.items()},
        "spark.pyspark.python": sys.executable,
        # the same interpreter, importing the installed pyspark rather than spark-submit's zips
        "spark.pyspark.driver.python": str(HOME / "scripts" / "spark-python"),
    }


def _jars() -> str | None:
    jars = sorted(glob.glob(str(HOME / ".jars" / "*.jar")))
    return ",".join(jars) or None


def build_dag(name: str, blueprint: dict) -> DAG:
    """The DAG of one blueprint: one spark-submit task per job, in a line."""
    with DAG(
        dag_id=f"looper_{name}",
        description=blueprint.get("description") or f"Looper loop for {name}",
        doc_md=__doc__,
        schedule=blueprint.get("schedule", "@daily"),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["looper", f"blueprint:{name}"],
        default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "owner": "looper"},
        params={
            "run_date": Param(
                None, type=["null", "string"], format="date",
                description="Day to process (YYYY-MM-DD); empty = the run's logical date",
            )
        },
    ) as dag:
        previous = None
        for job in JOBS:
            task = SparkSubmitOperator(
                task_id=job,
                application=str(HOME / "jobs" / f"{job}.py"),
                application_args=["--blueprint", name, *([] if job == "ingest_events" else ["--run-date", RUN_DATE])],
                conn_id="spark_default",
                name=f"looper-{name}-{job}",
                jars=_jars(),
                conf=_spark_conf(),
                env_vars={"LOOPER_HOME": str(HOME), "LOOPER_ENV": os.environ.get("LOOPER_ENV", "local"),
                          "LOOPER_PYTHON": sys.executable},
                doc_md=f"`jobs/{job}.py --blueprint {name}`: see the job's `--help`.",
            )
            if previous is not None:
                previous >> task
            previous = task
    return dag


for _name, _blueprint in _blueprints().items():
    globals()[f"looper_{_name}"] = build_dag(_name, _blueprint)
