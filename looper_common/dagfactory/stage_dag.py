"""One DAG per schedule, one task per stage for all its blueprints (``dags.layout: stage``).

The blueprints that share a ``schedule`` share a DAG ``looper_stages_<schedule>``, with
the stages of the per-blueprint DAG in the same order. Each stage task is one process
(``jobs/run_stage.py``) that runs the stage's job for every blueprint still in the run,
so a process's fixed cost is paid once per stage and day instead of once per blueprint.

A blueprint that fails a stage is dropped from the later stages of that run only: each
stage task pushes the blueprints that succeeded (XCom ``succeeded``) and the reasons of
those that failed (``failed``), and fails itself when any did, so Airflow shows it red.
A blueprint whose job raised was already tried again inside the stage
(``run_stage.py --attempts``), so such a failure is final (no task retry, which would
rerun every blueprint); a stage process that died before writing its outcome is retried.
The next stage runs (trigger rule ``all_done``) for the blueprints its upstream stage
passed. The last stage fails when any stage of the run failed a blueprint, so the run's
state says so and the ``alerts:`` notifiers are called.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, BaseOperator, chain
from airflow.sdk.exceptions import AirflowFailException

from looper_common.contracts.blueprint import Blueprint
from looper_common.contracts.config import Settings
from looper_common.dagfactory.blueprint_dag import (
    JOBS,
    RUN_DATE,
    SPARK_JOBS,
    START_DATE,
    WatermarkSensor,
    alert_callbacks,
    dag_params,
    job_environment,
    timetable,
    watermark_timeout,
)
from looper_common.stage_runner import UNDATED, StageOutcome

SUCCEEDED, FAILED = "succeeded", "failed"
STAGE_DOC = __doc__


class StageFailed(AirflowFailException):
    """Some blueprints failed a stage (already tried again where worth it): no task retry. The message names
    each with its reason."""


class StageDied(Exception):
    """The stage's process ended without writing its outcome (killed, out of memory): the task is retried."""


def upstream_blueprints(context, upstream: str | None, blueprints: Sequence[str]) -> list[str]:
    """The blueprints this stage runs for: all of the DAG's for the first stage, else what ``upstream`` passed."""
    if upstream is None:
        return list(blueprints)
    passed = context["ti"].xcom_pull(task_ids=upstream, key=SUCCEEDED)
    if passed is None:
        raise StageFailed(f"{upstream} recorded no outcome (it failed before running any blueprint, or did "
                          "not run): nothing to run; see its log")
    return list(passed)


class StageOperator(BaseOperator):
    """``jobs/run_stage.py <job>`` for the blueprints its upstream stage passed; pushes the outcome."""

    template_fields = ("run_date",)
    ui_color = "#e8f4ea"

    def __init__(self, *, job: str, blueprints: Sequence[str], settings: Settings, env: dict[str, str],
                 run_date: str = RUN_DATE, upstream: str | None = None, stages: Sequence[str] = (),
                 **kwargs) -> None:
        super().__init__(task_id=job, **kwargs)
        self.job, self.blueprints, self.settings, self.env = job, list(blueprints), settings, env
        self.run_date, self.upstream, self.stages = run_date, upstream, list(stages)

    def command(self, names: Sequence[str], outcome: Path) -> tuple[list[str], dict[str, str]]:
        """The stage's command line and environment: a plain process, or spark-submit for a Spark job
        when no Spark Connect server is configured."""
        args = [self.job, "--blueprints", ",".join(names), "--env", self.settings.env, "--outcome", str(outcome)]
        if self.job not in UNDATED:
            args += ["--run-date", self.run_date]
        environ = {**os.environ, **self.env}
        if self.job in SPARK_JOBS and not self.settings.spark.connect:
            from looper_common.submit import submission

            submitted = submission(self.settings, "run_stage", args, environ)
            return submitted.argv, submitted.env
        return [self.settings.jobs.python, f"{self.settings.jobs.dir}/run_stage.py", *args], environ

    def run_stage(self, names: Sequence[str]) -> StageOutcome:
        """Run the stage's process for ``names``, its output in the task's log; the outcome it wrote."""
        from airflow.providers.standard.hooks.subprocess import SubprocessHook

        with tempfile.TemporaryDirectory(prefix=f"looper-{self.job}-") as scratch:
            outcome_file = Path(scratch) / "outcome.json"
            argv, environ = self.command(names, outcome_file)
            self.log.info("%s for %d blueprint(s): %s", self.job, len(names), ", ".join(names))
            result = SubprocessHook().run_command(argv, env=environ, cwd=scratch)
            if not outcome_file.exists():
                raise StageDied(f"{self.job} exited with code {result.exit_code} before writing its outcome: "
                                "no blueprint is known to have succeeded; see the log above")
            return StageOutcome.read(outcome_file)

    def execute(self, context) -> None:
        names = upstream_blueprints(context, self.upstream, self.blueprints)
        if names:
            outcome = self.run_stage(names)
        else:  # every blueprint failed an earlier stage
            self.log.info("%s: no blueprint left to run", self.job)
            outcome = StageOutcome(self.job)
        ti = context["ti"]
        ti.xcom_push(key=SUCCEEDED, value=outcome.ok)
        ti.xcom_push(key=FAILED, value=outcome.failed)
        problems = [outcome.summary()] if outcome.failed else []
        for stage in self.stages:  # the last stage: every failure of the run
            failed = ti.xcom_pull(task_ids=stage, key=FAILED) or {}
            problems += [f"{stage}: {name} failed ({reason})" for name, reason in failed.items()]
        if problems:
            raise StageFailed("; ".join(problems))


class StageWatermarkSensor(WatermarkSensor):
    """The watermark sensor for the blueprints ingestion passed: waits until every one's watermark is past."""

    def __init__(self, *, upstream: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.upstream = upstream

    def poke(self, context) -> bool:
        self.blueprints = upstream_blueprints(context, self.upstream, self.blueprints)
        if not super().poke(context):
            return False
        context["ti"].xcom_push(key=SUCCEEDED, value=self.blueprints)
        return True


def schedule_slug(schedule: str) -> str:
    """A DAG id part for a schedule: ``@daily`` → ``daily``, ``0 3 * * *`` → ``0_3_x_x_x``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", schedule.replace("*", "x")).strip("_") or "once"


def build_stage_dag(dag_id: str, schedule: str, names: Sequence[str], blueprints: dict[str, Blueprint],
                    settings: Settings, dag_defaults: dict[str, object] | None = None) -> DAG:
    """The DAG of the blueprints ``names`` (all on ``schedule``): one task per stage, behind one watermark sensor."""
    env = job_environment(settings)
    lateness = max(blueprints[name].allowed_lateness_seconds for name in names)
    with DAG(
        **(dag_defaults or {}),
        dag_id=dag_id,
        description=f"Looper loop for {len(names)} blueprint(s) on {schedule}, one task per stage",
        doc_md=STAGE_DOC,
        schedule=timetable(schedule) if settings.dags.scheduled else None,
        start_date=START_DATE,
        catchup=False,
        is_paused_upon_creation=settings.dags.scheduled,
        max_active_runs=1,
        tags=["looper", "layout:stage", *(f"blueprint:{name}" for name in names)],
        default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "owner": "looper"},
        params=dag_params(),
    ) as dag:
        ingest = StageOperator(job="ingest_events", blueprints=names, settings=settings, env=env)
        sensor = StageWatermarkSensor(
            task_id="wait_for_watermark", upstream=ingest.task_id, blueprints=list(names), run_date=RUN_DATE,
            allowed_lateness_s=lateness, lake_root=settings.lake_root,
            storage_options=settings.lake_storage_options, env=env,
            ingest=[settings.jobs.python, f"{settings.jobs.dir}/run_stage.py", "ingest_events", "--blueprints",
                    ",".join(names), "--env", settings.env],
            mode="reschedule", timeout=watermark_timeout(lateness), trigger_rule="all_done",
        )
        tasks: list[BaseOperator] = [ingest, sensor]
        later = JOBS[JOBS.index("join_feedback"):]
        for job in later:
            last = job == later[-1]
            tasks.append(StageOperator(
                job=job, blueprints=names, settings=settings, env=env, upstream=tasks[-1].task_id,
                trigger_rule="all_done", stages=[t for t in JOBS if t != job] if last else (),
                retries=0 if last else 2,  # a critical alert is not transient: fail once, notify once
                on_failure_callback=alert_callbacks(settings, list(names)) if last else None,
            ))
        chain(*tasks)
    return dag


def build_stage_dags(blueprints: dict[str, Blueprint], settings: Settings,
                     dag_defaults: dict[str, object] | None = None) -> dict[str, DAG]:
    """One stage DAG per distinct schedule of ``blueprints`` (a slug shared by two schedules gets a hash)."""
    groups: dict[str, list[str]] = {}
    for name, blueprint in blueprints.items():
        groups.setdefault(blueprint.schedule, []).append(name)
    dags: dict[str, DAG] = {}
    for schedule, names in sorted(groups.items()):
        dag_id = f"looper_stages_{schedule_slug(schedule)}"
        if dag_id in dags:
            dag_id += "_" + hashlib.sha1(schedule.encode()).hexdigest()[:6]
        dags[dag_id] = build_stage_dag(dag_id, schedule, sorted(names), blueprints, settings, dag_defaults)
    return dags
