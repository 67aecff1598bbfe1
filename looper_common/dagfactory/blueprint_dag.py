"""One DAG per blueprint (``dags.layout: blueprint``): the blueprint's jobs in a line, one process each."""


from __future__ import annotations

import os
import shlex
from datetime import timedelta

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, BaseOperator, BaseSensorOperator, CronDataIntervalTimetable, Param, chain

from looper_common.contracts.blueprint import Blueprint
from looper_common.contracts.config import OVERRIDES, Settings

JOBS = ("ingest_events", "join_feedback", "validate_training_set", "train_models",
        "evaluate_models", "tune_policy", "publish_policies", "monitor_blueprint")
SPARK_JOBS = frozenset({"join_feedback"})  # the delayed-feedback join is work at cluster size
RUN_DATE = "{{ params.run_date or ds }}"
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
WATERMARK_POKE = timedelta(minutes=5)
WATERMARK_STALL = timedelta(hours=6)  # past the deadline: ingestion is stuck, the sensor fails
DAG_DOC = """
### Looper: one DAG per blueprint

Every file in the blueprints folder becomes a DAG `looper_<blueprint>` that closes the
loop for one decision point, over one data interval (the run date):

`ingest_events` → `wait_for_watermark` → `join_feedback` → `validate_training_set` →
`train_models` → `evaluate_models` → `tune_policy` → `publish_policies` → `monitor_blueprint`

`wait_for_watermark` holds the join for day D until ingestion's watermark (the arrival
time through which the blueprint's stream is in the lake) has passed the end of D plus
the blueprint's `allowed_lateness`; each poke that finds it short drains the stream
once more (`jobs/ingest_events.py`), which advances it. `monitor_blueprint` fails on a
critical alert (its rows are in `monitoring/alerts` first); the notifiers named in the
`alerts:` settings (or `LOOPER_ALERT_WEBHOOK_CONN` / `LOOPER_ALERT_EMAIL`) then tell the team.

Each task runs the job of the same name (`jobs.dir` of `conf/<env>.yaml`) as a plain
Python process (`jobs.python`); a job that uses Spark builds a session itself. With
`spark.connect` set (the embedded stack), that session is a client of the shared Spark
Connect server, started on first need. Without it, `join_feedback` is a `spark-submit`
(master from the `spark_default` connection; jars from `spark.jars_dir`).

To (re)process a given day from the UI: *Trigger DAG* and set `run_date`
(YYYY-MM-DD); left empty, the run's logical date is used. Every job is idempotent
for its run date.
"""


def job_environment(settings: Settings) -> dict[str, str]:
    """What the jobs read besides their arguments: the settings this DAG was built from.

    The ``LOOPER_*`` overrides set where the DAG file is parsed go along, so a job loads
    the same settings and blueprints; secrets (``LOOPER_REDIS_PASSWORD``) never do: they
    come from the worker's own environment.
    """
    return {
        **{var: os.environ[var] for var in OVERRIDES if os.environ.get(var)},
        "LOOPER_HOME": settings.home,
        "LOOPER_ENV": settings.env,
        "LOOPER_PYTHON": settings.jobs.python,
    }


def spark_job(job: str, name: str, settings: Settings, jars: str | None, env: dict[str, str]) -> BaseOperator:
    """``spark-submit <jobs.dir>/<job>.py`` with the environment's jars, Python and Spark settings.

    ``spark.conf`` goes to spark-submit because some settings only act when the driver
    JVM is launched (``spark.driver.memory``, ``spark.driver.extraJavaOptions``).
    """
    return SparkSubmitOperator(
        task_id=job,
        application=f"{settings.jobs.dir}/{job}.py",
        application_args=["--blueprint", name, "--run-date", RUN_DATE, "--env", settings.env],
        conn_id="spark_default",
        name=f"looper-{name}-{job}",
        jars=jars,
        py_files=settings.spark.py_files,  # looper_common for the executors (a zip or wheel)
        conf={
            "spark.pyspark.python": settings.spark.python,
            "spark.pyspark.driver.python": settings.spark.python,
            **settings.spark.conf,
        },
        env_vars=env,
        doc_md=f"`spark-submit jobs/{job}.py --blueprint {name}`: see the job's `--help`.",
    )


def python_job(job: str, name: str, settings: Settings, env: dict[str, str]) -> BaseOperator:
    """``<jobs.python> <jobs.dir>/<job>.py``: a plain process, no JVM unless the job starts one.

    The run date reaches the command through the environment, never pasted into it, so a
    ``run_date`` typed in the trigger form cannot change the command.
    """
    command = shlex.join([settings.jobs.python, f"{settings.jobs.dir}/{job}.py",
                          "--blueprint", name, "--env", settings.env])
    if job != "ingest_events":  # ingestion drains the streams; it has no data interval
        command += ' --run-date "$LOOPER_RUN_DATE"'
    return BashOperator(
        task_id=job,
        bash_command=command,
        env={**env, "LOOPER_RUN_DATE": RUN_DATE},
        append_env=True,  # PATH, PYTHONPATH and the secrets of the worker's environment
        skip_on_exit_code=None,  # every failing exit is a failure
        do_xcom_push=False,
        doc_md=f"`jobs/{job}.py --blueprint {name}`: see the job's `--help`.",
    )


def poke_watermark(blueprints: str | list[str], run_date: str, allowed_lateness_s: int, lake_root: str,
                   ingest: list[str], env: dict[str, str], storage_options: dict[str, str] | None = None) -> bool:
    """The sensor's poke: has the watermark of every one of ``blueprints`` passed the run date's end plus the
    allowed lateness?

    When one has not, one more ingestion run drains what arrived since (and records the
    watermarks), and the answer is read again.
    """
    import subprocess
    from datetime import date, datetime, time

    from looper_common.ingest.watermark import watermark_passed
    from looper_common.lake.engine import Lake

    names = [blueprints] if isinstance(blueprints, str) else list(blueprints)
    lake = Lake(lake_root, storage_options=storage_options or {})
    deadline = datetime.combine(date.fromisoformat(run_date), time.min, pendulum.UTC) + timedelta(
        days=1, seconds=allowed_lateness_s)
    if all(watermark_passed(lake, name, deadline) for name in names):
        return True
    subprocess.run(ingest, env={**os.environ, **env}, check=True)
    return all(watermark_passed(lake, name, deadline) for name in names)


class WatermarkSensor(BaseSensorOperator):
    """Waits until ``run_date``'s feedback is all in the lake: :func:`poke_watermark`, rescheduled."""

    template_fields = ("run_date",)

    def __init__(self, *, blueprints: list[str], run_date: str, allowed_lateness_s: int, lake_root: str,
                 ingest: list[str], env: dict[str, str], storage_options: dict[str, str] | None = None,
                 **kwargs) -> None:
        kwargs.setdefault("poke_interval", WATERMARK_POKE)
        super().__init__(**kwargs)
        self.blueprints, self.run_date, self.allowed_lateness_s = list(blueprints), run_date, allowed_lateness_s
        self.lake_root, self.ingest, self.env = lake_root, ingest, env
        self.storage_options = dict(storage_options or {})

    def poke(self, context) -> bool:
        return poke_watermark(self.blueprints, self.run_date, self.allowed_lateness_s, self.lake_root,
                              self.ingest, self.env, self.storage_options)


def watermark_timeout(allowed_lateness_s: int) -> timedelta:
    """How long a sensor waits: the allowed lateness, then ``WATERMARK_STALL`` more before it fails (stuck)."""
    return timedelta(seconds=allowed_lateness_s) + WATERMARK_STALL


def watermark_sensor(name: str, blueprint: Blueprint, settings: Settings, env: dict[str, str]) -> BaseOperator:
    """The blueprint's sensor: a poke every ``WATERMARK_POKE``, failing ``WATERMARK_STALL`` after the deadline."""
    return WatermarkSensor(
        task_id="wait_for_watermark",
        blueprints=[name],
        run_date=RUN_DATE,
        allowed_lateness_s=blueprint.allowed_lateness_seconds,
        lake_root=settings.lake_root,
        storage_options=settings.lake_storage_options,
        ingest=[settings.jobs.python, f"{settings.jobs.dir}/ingest_events.py", "--blueprint", name,
                "--env", settings.env],
        env=env,
        mode="reschedule",
        timeout=watermark_timeout(blueprint.allowed_lateness_seconds),
        doc_md=f"Waits for the watermark to pass the run date's end + {blueprint.allowed_lateness}.",
    )


def timetable(schedule: str) -> str | CronDataIntervalTimetable:
    """The blueprint's cron schedule with data intervals, in UTC.

    A run then covers the interval that just ended and its logical date (``ds``, the
    default run date) is that interval's start: the run at midnight processes the day
    before. Airflow 3 would read a bare cron string as a trigger time instead (a run's
    logical date = when it runs: the day that has just begun).
    """
    if schedule in ("@once", "@continuous"):
        return schedule
    return CronDataIntervalTimetable(schedule, timezone="UTC")


def airflow_dag_defaults() -> dict[str, object]:
    """The DAG arguments Airflow would read from its configuration for every DAG, read once per parse.

    Left out, each ``DAG(...)`` reads them again (three configuration look-ups, each
    scanning the environment); passed explicitly, they are the same values.
    """
    from airflow.configuration import conf

    return {
        "max_active_tasks": conf.getint("core", "max_active_tasks_per_dag"),
        "max_consecutive_failed_dag_runs": conf.getint("core", "max_consecutive_failed_dag_runs_per_dag"),
        "disable_bundle_versioning": conf.getboolean("dag_processor", "disable_bundle_versioning"),
    }


def dag_params() -> dict[str, Param]:
    """The trigger form's fields: the day to process."""
    return {"run_date": Param(None, type=["null", "string"], format="date",
                              description="Day to process (YYYY-MM-DD); empty = the run's logical date")}


def build_dag(name: str, blueprint: Blueprint, settings: Settings, jars: str | None,
              dag_defaults: dict[str, object] | None = None) -> DAG:
    """The DAG of one blueprint: its jobs in a line, the join behind the watermark sensor, the monitor last."""
    env = job_environment(settings)
    with DAG(
        **(dag_defaults or {}),
        dag_id=f"looper_{name}",
        description=blueprint.description or f"Looper loop for {name}",
        doc_md=DAG_DOC,
        # settings.dags.scheduled false (conf/local.yaml): runs only when triggered, so it is
        # created unpaused and unpausing starts nothing (README, "Airflow UI")
        schedule=timetable(blueprint.schedule) if settings.dags.scheduled else None,
        start_date=START_DATE,
        catchup=False,  # unpausing schedules only the latest complete interval, not every day since START_DATE
        is_paused_upon_creation=settings.dags.scheduled,  # scheduled: nothing runs until someone unpauses
        max_active_runs=1,
        tags=["looper", f"blueprint:{name}"],
        default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "owner": "looper"},
        params=dag_params(),
    ) as dag:
        tasks = [
            spark_job(job, name, settings, jars, env) if job in SPARK_JOBS and not settings.spark.connect
            else python_job(job, name, settings, env)
            for job in JOBS
        ]
        monitor = tasks[JOBS.index("monitor_blueprint")]
        monitor.retries = 0  # a critical alert is not transient: fail once, notify once
        monitor.on_failure_callback = alert_callbacks(settings, name)
        tasks.insert(JOBS.index("join_feedback"), watermark_sensor(name, blueprint, settings, env))
        chain(*tasks)
    return dag


def alert_callbacks(settings: Settings, blueprint: str | list[str]) -> list:
    """The notifiers the monitor task's failure goes to (the ``alerts:`` settings; none unless set).

    Each lists the day's alerts of ``blueprint`` (or of each of a list), read from the lake of these settings.
    """
    from looper_common.monitoring.notify import alert_notifiers

    return alert_notifiers(settings.alerts, blueprint=blueprint, env=settings.env, home=settings.home)
