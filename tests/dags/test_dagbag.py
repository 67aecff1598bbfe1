"""Airflow's DagBag: every blueprint becomes a DAG that imports cleanly, light at parse time.

Every task runs its job as a plain Python process (the join's session a client of the
``spark.connect`` server), or, with ``spark.connect`` off, the join as a spark-submit; the
interpreter, job folder, jars and Spark Python come from ``conf/<env>.yaml``, read once per
parse of the DAG file.
"""

from __future__ import annotations

import glob
import os
import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from looper_common import dagfactory
from looper_common.contracts import config
from looper_common.contracts.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
JOBS = ["ingest_events", "join_feedback", "validate_training_set", "train_models",
        "evaluate_models", "tune_policy", "publish_policies", "monitor_blueprint"]
RUN_DATE = "{{ params.run_date or ds }}"


def _dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="module")
def dagbag():
    return _dagbag()


@pytest.fixture(scope="module")
def settings():
    return load_settings(home=ROOT)


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_one_dag_per_blueprint(dagbag):
    blueprints = sorted(p.stem for p in (ROOT / "blueprints").glob("*.yaml"))
    assert len(blueprints) >= 3
    assert sorted(dagbag.dag_ids) == [f"looper_{name}" for name in blueprints]


@pytest.mark.parametrize("blueprint", ["notification_send", "feed_layout", "promo_offer"])
def test_dag_shape(dagbag, blueprint):
    from airflow.sdk.definitions.timetables.simple import NullTimetable

    dag = dagbag.dags[f"looper_{blueprint}"]
    assert set(dag.tags) == {"looper", f"blueprint:{blueprint}"}
    assert dag.doc_md and "run_date" in dag.params and dag.params["run_date"] is None
    assert dag.start_date.utcoffset() == timedelta(0) and dag.start_date.tzinfo.name == "UTC"
    assert dag.catchup is False and dag.max_active_runs == 1
    # conf/local.yaml: dags.scheduled false, so the DAG runs only when triggered (README, "Airflow UI")
    assert isinstance(dag.timetable, NullTimetable) and dag.schedule is None
    assert dag.is_paused_upon_creation is False
    assert [t.task_id for t in dag.topological_sort()] == [*JOBS[:1], "wait_for_watermark", *JOBS[1:]]
    assert all(task.retries == 2 for task in dag.tasks if task.task_id != "monitor_blueprint")
    assert dag.get_task("monitor_blueprint").retries == 0  # a critical alert fails once and notifies once


def test_the_join_waits_for_the_watermark(dagbag, settings):
    from airflow.sdk import BaseSensorOperator

    sensor = dagbag.dags["looper_notification_send"].get_task("wait_for_watermark")
    assert isinstance(sensor, BaseSensorOperator) and sensor.mode == "reschedule"
    assert [t.task_id for t in sensor.downstream_list] == ["join_feedback"]
    assert [t.task_id for t in sensor.upstream_list] == ["ingest_events"]
    # allowed_lateness defaults to 1h; a watermark stalled 6 h past the deadline fails the run
    assert sensor.poke_interval == 300 and sensor.timeout == 7 * 3600
    assert (sensor.run_date, sensor.allowed_lateness_s, sensor.lake_root) == (RUN_DATE, 3600, settings.lake_root)
    assert sensor.ingest == [settings.jobs.python, f"{settings.jobs.dir}/ingest_events.py",
                             "--blueprint", "notification_send", "--env", "local"]


def _plain_process_checks(dag, settings, jobs, env) -> None:
    from airflow.providers.standard.operators.bash import BashOperator

    for job in jobs:
        task = dag.get_task(job)
        assert isinstance(task, BashOperator), job
        words = shlex.split(task.bash_command)
        assert words[:6] == [settings.jobs.python, f"{settings.jobs.dir}/{job}.py",
                             "--blueprint", "notification_send", "--env", "local"]
        # the run date only through the environment: what the trigger form gets cannot reach the shell
        assert words[6:] == ([] if job == "ingest_events" else ["--run-date", "$LOOPER_RUN_DATE"])
        assert "{{" not in task.bash_command and "spark-submit" not in task.bash_command
        assert env.items() <= task.env.items() and task.env["LOOPER_RUN_DATE"] == RUN_DATE and task.append_env
        assert task.skip_on_exit_code == []


def test_with_spark_connect_every_task_is_a_plain_process(dagbag, settings):
    """The join too: its session is a client of the ``spark.connect`` server, passed on to the job."""
    assert settings.spark.connect
    env = {"LOOPER_HOME": str(ROOT), "LOOPER_ENV": "local", "LOOPER_PYTHON": settings.jobs.python,
           "LOOPER_SPARK_CONNECT": os.environ["LOOPER_SPARK_CONNECT"]}
    _plain_process_checks(dagbag.dags["looper_notification_send"], settings, JOBS, env)


def test_without_spark_connect_only_join_feedback_is_a_spark_submit(monkeypatch):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    monkeypatch.setenv("LOOPER_SPARK_CONNECT", "off")
    settings = load_settings(home=ROOT)
    assert settings.spark.connect is None
    dag = _dagbag().dags["looper_notification_send"]
    join = dag.get_task("join_feedback")
    assert isinstance(join, SparkSubmitOperator)
    assert join.application == f"{settings.jobs.dir}/join_feedback.py"
    assert join.application_args == ["--blueprint", "notification_send", "--run-date", RUN_DATE, "--env", "local"]
    jars = join.jars.split(",")
    assert jars == sorted(glob.glob(f"{settings.spark.jars_dir}/*.jar")) and any("delta-spark" in j for j in jars)
    # the configured Spark Python for driver and executors, not the parsing process's interpreter
    assert join.conf["spark.pyspark.python"] == join.conf["spark.pyspark.driver.python"] == settings.spark.python
    assert settings.spark.python == f"{ROOT}/scripts/spark-python" != sys.executable
    assert join.conf["spark.driver.memory"] == settings.spark.conf["spark.driver.memory"]
    env = {"LOOPER_HOME": str(ROOT), "LOOPER_ENV": "local", "LOOPER_PYTHON": settings.jobs.python}
    assert env.items() <= join.env_vars.items()
    _plain_process_checks(dag, settings, [job for job in JOBS if job != "join_feedback"], env)


def test_settings_and_blueprints_are_read_once_per_parse(tmp_path, monkeypatch):
    folder = tmp_path / "blueprints"
    folder.mkdir()
    template = yaml.safe_load((ROOT / "blueprints" / "notification_send.yaml").read_text())
    names = [f"decision_{i}" for i in range(5)]
    for name in names:
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({**template, "name": name}))
    monkeypatch.setenv("LOOPER_BLUEPRINTS_DIR", str(folder))
    calls = {"load_settings": 0, "yaml": 0}
    load, yaml_load = config.load_settings, yaml.load

    def counted_load_settings(*args, **kwargs):
        calls["load_settings"] += 1
        return load(*args, **kwargs)

    def counted_load(stream, Loader):  # noqa: N803 (PyYAML's name)
        # Looper's reads (a file's text), not Airflow's own (its config.yml, opened, when first imported)
        calls["yaml"] += Loader is config.SAFE_LOADER and isinstance(stream, str)
        return yaml_load(stream, Loader)

    monkeypatch.setattr(config, "load_settings", counted_load_settings)
    monkeypatch.setattr(dagfactory, "load_settings", counted_load_settings)  # imported by name
    monkeypatch.setattr(yaml, "load", counted_load)
    bag = _dagbag()  # a real parse of the DAG file, importing it afresh

    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == [f"looper_{name}" for name in names]
    assert calls == {"load_settings": 1, "yaml": 1 + len(names)}  # conf/local.yaml, then each blueprint once
    # the jobs get the folder the DAGs came from
    assert bag.dags["looper_decision_0"].get_task("train_models").env["LOOPER_BLUEPRINTS_DIR"] == str(folder)


def test_an_invalid_blueprint_is_logged_by_name_and_the_others_dags_load(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "blueprints"
    folder.mkdir()
    (folder / "broken.yaml").write_text("name: broken\nschedul: '@daily'\n")
    (folder / "notification_send.yaml").write_text((ROOT / "blueprints" / "notification_send.yaml").read_text())
    monkeypatch.setenv("LOOPER_BLUEPRINTS_DIR", str(folder))
    with caplog.at_level("ERROR", logger="looper_common.contracts.blueprint"):
        bag = _dagbag()
    assert bag.import_errors == {} and bag.dag_ids == ["looper_notification_send"]
    assert "broken.yaml: schedul: unknown field" in caplog.text


@pytest.mark.parametrize("layout", ["blueprint", "stage"])
def test_parsing_imports_nothing_heavy(layout):
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "heavy = [m for m in ('pyspark', 'mlflow', 'sklearn', 'great_expectations', 'pandas', 'numpy', "
        "'pyarrow', 'deltalake') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(DAGS / "looper_blueprints.py")],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "LOOPER_HOME": str(ROOT), "LOOPER_DAGS_LAYOUT": layout})
    assert out.stdout.strip() == ""


def test_a_scheduled_deployment_runs_each_blueprint_on_its_schedule(settings):
    """dags.scheduled true (a deployment): "@daily" with data intervals, created paused."""
    from airflow.sdk import CronDataIntervalTimetable

    from looper_common.contracts.blueprint import load_blueprints
    from looper_common.dagfactory.blueprint_dag import build_dag

    scheduled = settings.model_copy(update={"dags": config.DagSettings(scheduled=True)})
    blueprint = load_blueprints(settings.blueprints_dir)["notification_send"]
    dag = build_dag("notification_send", blueprint, scheduled, None)
    # the midnight run's logical date (ds) is the day before
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == ("0 0 * * *", "UTC")
    assert dag.is_paused_upon_creation is True and dag.catchup is False


def test_the_stage_layout_is_one_dag_per_schedule_one_task_per_stage(tmp_path, monkeypatch):
    """dags.layout: stage: the blueprints of a schedule share a DAG; each stage is one run_stage task for all."""
    folder = tmp_path / "blueprints"
    folder.mkdir()
    template = yaml.safe_load((ROOT / "blueprints" / "notification_send.yaml").read_text())
    for name, schedule in [("b_one", "@daily"), ("a_two", "@daily"), ("hourly", "0 * * * *")]:
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({**template, "name": name, "schedule": schedule}))
    monkeypatch.setenv("LOOPER_BLUEPRINTS_DIR", str(folder))
    monkeypatch.setenv("LOOPER_DAGS_LAYOUT", "stage")
    bag = _dagbag()
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["looper_stages_0_x_x_x_x", "looper_stages_daily"]
    dag = bag.dags["looper_stages_daily"]  # get_dag would ask the metadata database first
    assert {"blueprint:a_two", "blueprint:b_one", "layout:stage"} <= set(dag.tags)
    order = [t.task_id for t in dag.topological_sort()]
    assert order == [JOBS[0], "wait_for_watermark", *JOBS[1:]]
    first, sensor, *stages = (dag.get_task(t) for t in order)
    assert first.blueprints == ["a_two", "b_one"] and first.upstream is None
    assert sensor.blueprints == ["a_two", "b_one"] and sensor.mode == "reschedule"
    assert sensor.trigger_rule == "all_done"  # it runs for whichever blueprints ingestion passed
    for upstream, stage in zip([sensor, *stages], stages, strict=False):
        assert stage.upstream == upstream.task_id and stage.trigger_rule == "all_done"
    assert stages[-1].stages == [t for t in JOBS if t != "monitor_blueprint"] and stages[-1].retries == 0
    settings = load_settings(home=ROOT)
    argv, env = stages[0].command(["a_two", "b_one"], tmp_path / "outcome.json")
    assert argv == [settings.jobs.python, f"{settings.jobs.dir}/run_stage.py", "join_feedback", "--blueprints",
                    "a_two,b_one", "--env", "local", "--outcome", str(tmp_path / "outcome.json"), "--run-date",
                    RUN_DATE]
    assert env["LOOPER_BLUEPRINTS_DIR"] == str(folder)
    # without a Spark Connect server the join stage is one spark-submit for all the blueprints
    classic = stages[0].settings.model_copy(update={"spark": settings.spark.model_copy(update={"connect": None})})
    stages[0].settings = classic  # the Delta jars are there: make test's bootstrap fetched them
    argv, _ = stages[0].command(["a_two"], tmp_path / "outcome.json")
    assert argv[0].endswith("spark-submit") and argv[argv.index("--master") + 1] == settings.spark.master
    assert argv[-10:-8] == [f"{settings.jobs.dir}/run_stage.py", "join_feedback"]
