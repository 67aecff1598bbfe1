"""`looper submit JOB` runs a job through a real spark-submit without an activated venv;
without the Delta jars, a job fails with one line naming them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from looper_common.lake.jars import MissingJars, missing_in
from looper_common.submit import spark_home, submission
from tests.conftest import ROOT


def _bare_env(tmp_path: Path) -> dict[str, str]:
    """No activated venv: PATH without it, no SPARK_HOME or PYSPARK_PYTHON; a scratch lake."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "SPARK_HOME", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    env.update(PATH="/usr/local/bin:/usr/bin:/bin", LOOPER_HOME=str(ROOT), LOOPER_PYTHON=sys.executable,
               LOOPER_LAKE_ROOT=str(tmp_path / "lake"), SPARK_LOCAL_IP="127.0.0.1", PYTHONPATH=str(ROOT))
    return env


def test_submit_runs_a_job_through_spark_submit(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "looper_common.cli", "submit", "join_feedback",
         "--blueprint", "notification_send", "--run-date", "2026-01-01"],
        env=_bare_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # spark-submit passes the job's stderr on to its stdout
    assert result.returncode == 0, result.stdout[-3000:]
    assert "join_feedback INFO join statistics" in result.stdout
    assert '"date": "2026-01-01"' in result.stdout
    assert (tmp_path / "lake" / "monitoring" / "join_stats" / "_delta_log").is_dir()  # Delta through the jars


def test_bare_spark_submit_without_jars_fails_with_one_line(tmp_path):
    env = _bare_env(tmp_path)
    home = spark_home(env)
    env.update(SPARK_HOME=home, PYSPARK_PYTHON=sys.executable)
    result = subprocess.run(
        [os.path.join(home, "bin", "spark-submit"), "--conf", "spark.ui.enabled=false",
         str(ROOT / "jobs" / "join_feedback.py"), "--blueprint", "notification_send", "--run-date", "2026-01-01"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout and "JavaPackage" not in result.stdout
    problems = [line for line in result.stdout.splitlines() if "Delta jars" in line]
    assert problems == [
        "Spark is missing the Delta jars delta-spark_*.jar, delta-storage-*.jar (not given to spark-submit): "
        "run `make bootstrap` (it fetches them once into .jars/), then `looper submit JOB ...`"
    ]
    assert "ClassNotFoundException" not in result.stdout


def test_submit_refuses_an_empty_jars_dir_naming_the_jars(settings, tmp_path):
    empty = settings.model_copy(update={"spark": settings.spark.model_copy(update={"jars_dir": str(tmp_path)})})
    with pytest.raises(MissingJars) as err:
        submission(empty, "join_feedback", [])
    assert str(err.value.code).startswith(f"Spark is missing the Delta jars delta-spark_*.jar, delta-storage-*.jar "
                                          f"(not in spark.jars_dir {tmp_path}): run `make bootstrap`")


def test_submit_refuses_an_unknown_job(settings):
    with pytest.raises(ValueError, match="unknown job 'nope'.*join_feedback"):
        submission(settings, "nope", [])


def test_submission_carries_the_settings(settings):
    run = submission(settings, "train_models", ["--blueprint", "b", "--run-date", "2026-01-01"])
    assert run.argv[0].endswith("/bin/spark-submit") and run.argv[-4:] == ["--blueprint", "b", "--run-date",
                                                                           "2026-01-01"]
    assert f"spark.pyspark.python={settings.spark.python}" in run.argv
    assert not missing_in(run.argv[run.argv.index("--jars") + 1].split(","))
    assert run.env["SPARK_HOME"] == os.path.dirname(run.argv[0]).removesuffix("/bin")
    assert run.env["PYTHONPATH"].split(os.pathsep)[0] == settings.home


def test_missing_in_reads_packages_and_paths():
    from looper_common.lake.jars import session_jars

    assert missing_in(session_jars({"spark.jars.packages": "io.delta:delta-spark_2.13:4.0.0"}, None)) == []
    assert missing_in(session_jars({"spark.jars": "file:/x/delta-storage-4.0.jar"}, None)) == ["delta-spark_*.jar"]
