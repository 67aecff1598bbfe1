"""The SparkSession every job uses: Delta enabled, settings from ``conf/<env>.yaml``.

Under ``spark-submit`` the session already exists and its settings win; run as a
plain Python process (tests, the demo) the builder starts a local JVM with the
project's Delta jars from ``.jars/``.
"""

from __future__ import annotations

import glob
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from pyspark.sql import SparkSession

from looper_common.contracts.config import Settings

T = TypeVar("T")

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def delta_jars(settings: Settings) -> list[str]:
    """The Delta jars fetched by ``make bootstrap`` (empty when none are configured)."""
    if not settings.spark.jars_dir:
        return []
    jars = sorted(glob.glob(os.path.join(settings.spark.jars_dir, "*.jar")))
    if not any("delta-spark" in os.path.basename(j) for j in jars):
        raise RuntimeError(
            f"no Delta jars in {settings.spark.jars_dir}: run `make bootstrap` (it fetches them once)"
        )
    return jars


def under_spark_submit() -> bool:
    """True inside a Python application launched by ``spark-submit`` (its JVM is already up)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(settings: Settings, app_name: str = "looper") -> SparkSession:
    """Get or create the session with Delta and the configured master and settings."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if not under_spark_submit():  # spark-submit already chose the master and shipped the jars
        builder = builder.master(settings.spark.master)
        jars = delta_jars(settings)
        if jars:
            builder = builder.config("spark.jars", ",".join(jars))
    defaults = {"spark.sql.warehouse.dir": os.path.join(settings.home, "var", "spark-warehouse")}
    for key, value in {**defaults, **DELTA_CONF, **settings.spark.conf}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def in_background(task: Callable[[], T], name: str) -> Future[T]:
    """Run ``task`` in a thread of its own; the future holds its result (or its exception)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    future = pool.submit(task)
    pool.shutdown(wait=False)  # the thread ends after its one task; nothing waits for it here
    return future


def start_spark(
    settings: Settings, app_name: str = "looper", warm_up: Callable[[SparkSession], object] | None = None
) -> Future[SparkSession]:
    """Build the session (then run ``warm_up`` on it) in a background thread; returns its future.

    A job's driver JVM sits idle while Python imports the job's libraries (MLflow, Great
    Expectations, scikit-learn: seconds each), and Python waits while the JVM builds the
    session and loads Delta: started first, the two overlap on a second core. ``warm_up``
    is for the JVM's share of the job's first step (e.g. loading a Delta table's log);
    to keep what the first step returns, chain it with :func:`in_background` instead.
    """

    def build() -> SparkSession:
        spark = get_spark(settings, app_name)
        if warm_up is not None:
            warm_up(spark)
        return spark

    return in_background(build, "spark-session")


class LazySession:
    """A session built on the first call, for jobs that may not need Spark at all.

    Jobs that read small tables from the Delta log (``delta_read``) and keep their data in
    pandas only need Spark for what exceeds that; calling the object builds the session
    once (from whichever thread asks first) and returns it.
    """

    def __init__(self, settings: Settings, app_name: str) -> None:
        self._settings, self._app_name = settings, app_name
        self._session: SparkSession | None = None
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._session is not None

    def __call__(self) -> SparkSession:
        with self._lock:
            if self._session is None:
                self._session = get_spark(self._settings, self._app_name)
        return self._session


SessionSource = Callable[[], SparkSession]  # a session, or a LazySession: built when first called
