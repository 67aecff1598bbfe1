"""``looper submit JOB ...``: run any job of ``jobs.dir`` through spark-submit by hand.

The command is the one the DAG's Spark task runs (``dags/looper_blueprints.py``): the
Delta jars of ``spark.jars_dir``, ``spark.conf``, the driver and executor Python of
``spark.python``, plus the master of ``spark.master``. Its environment is complete on its
own, so it works without activating the virtualenv: ``SPARK_HOME`` is the installed
pyspark's (unless already set to a Spark with ``bin/spark-submit``), ``PYSPARK_PYTHON``
is ``spark.python``, ``LOOPER_HOME``/``LOOPER_ENV``/``LOOPER_PYTHON`` are the settings'
and the project home leads ``PYTHONPATH``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from looper_common.contracts.config import Settings
from looper_common.lake.connect_server import CONNECT_CLIENT_VARS
from looper_common.lake.jars import MissingJars, jars_in_dir, missing_in


@dataclass(frozen=True, slots=True)
class Submission:
    """A spark-submit command line and the environment it runs in."""

    argv: list[str]
    env: dict[str, str]


def available_jobs(settings: Settings) -> list[str]:
    """The job names of ``jobs.dir`` (``jobs/<name>.py``), sorted."""
    return sorted(p.stem for p in Path(settings.jobs.dir).glob("*.py") if not p.name.startswith("_"))


def spark_home(environ: Mapping[str, str]) -> str:
    """``$SPARK_HOME`` when it holds ``bin/spark-submit``, else the installed pyspark package's folder."""
    configured = environ.get("SPARK_HOME")
    if configured and os.access(os.path.join(configured, "bin", "spark-submit"), os.X_OK):
        return configured
    import pyspark  # the pip package is a complete Spark: bin/, jars/

    return os.path.dirname(os.path.abspath(pyspark.__file__))


def submission(settings: Settings, job: str, job_args: Sequence[str],
               environ: Mapping[str, str] | None = None) -> Submission:
    """The spark-submit of ``jobs.dir/<job>.py`` with ``job_args``.

    Raises :class:`ValueError` for an unknown job and
    :class:`~looper_common.lake.jars.MissingJars` when ``spark.jars_dir`` lacks the Delta jars.
    """
    known = available_jobs(settings)
    if job not in known:
        raise ValueError(f"unknown job {job!r} in {settings.jobs.dir} (known: {', '.join(known) or 'none'})")
    return spark_submit(settings, f"looper-{job}", [os.path.join(settings.jobs.dir, f"{job}.py"), *job_args],
                        environ)


def spark_submit(settings: Settings, name: str, main: Sequence[str],
                 environ: Mapping[str, str] | None = None) -> Submission:
    """spark-submit with the environment's master, Delta jars, ``spark.conf`` and Python, then ``main``.

    ``main`` is the application and its arguments (or ``--class`` of one of Spark's own).
    Raises :class:`~looper_common.lake.jars.MissingJars` when ``spark.jars_dir`` lacks the Delta jars.
    """
    jars = jars_in_dir(settings.spark.jars_dir)
    missing = missing_in(jars)
    if missing:
        raise MissingJars(missing, f"not in spark.jars_dir {settings.spark.jars_dir}")
    environ = dict(os.environ if environ is None else environ)
    for var in CONNECT_CLIENT_VARS:  # set in a process that opened a Spark Connect session: not Spark's mode here
        environ.pop(var, None)
    home = spark_home(environ)
    conf = {"spark.pyspark.python": settings.spark.python, "spark.pyspark.driver.python": settings.spark.python,
            **settings.spark.conf}
    argv = [os.path.join(home, "bin", "spark-submit"), "--master", settings.spark.master,
            "--name", name, "--jars", ",".join(jars)]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    argv += list(main)
    python_path = [settings.home, *filter(None, environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**environ, "SPARK_HOME": home, "PYSPARK_PYTHON": settings.spark.python,
           "PYSPARK_DRIVER_PYTHON": settings.spark.python, "LOOPER_HOME": settings.home,
           "LOOPER_ENV": settings.env, "LOOPER_PYTHON": settings.jobs.python,
           "PYTHONPATH": os.pathsep.join(dict.fromkeys(python_path))}
    return Submission(argv=argv, env=env)
