"""Spark's side of the lake: the session (Delta enabled, settings from ``conf/<env>.yaml``) and its Delta I/O.

Under ``spark-submit`` the session already exists and its settings win; run as a
plain Python process (tests, the demo) the builder starts a local JVM with the
project's Delta jars from ``.jars/``. Reads and writes use Spark's public DataFrame
and SQL API only (``MERGE INTO``, ``replaceWhere``), so they also work as a client of
a Spark Connect server. Only :mod:`looper_common.lake.engine` calls the I/O functions.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import date

from pyspark import SparkConf, SparkContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from looper_common.contracts.config import Settings
from looper_common.lake.jars import MissingJars, jars_in_dir, missing_in, session_jars
from looper_common.lake.tables import TableSpec

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # microsecond timestamps, as delta-rs writes them (Spark's default, INT96, is a legacy encoding)
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


def delta_jars(settings: Settings) -> list[str]:
    """The Delta jars fetched by ``make bootstrap`` (empty when none are configured)."""
    if not settings.spark.jars_dir:
        return []
    jars = jars_in_dir(settings.spark.jars_dir)
    missing = missing_in(jars)
    if missing:
        raise MissingJars(missing, f"not in spark.jars_dir {settings.spark.jars_dir}")
    return jars


def under_spark_submit() -> bool:
    """True inside a Python application launched by ``spark-submit`` (its JVM is already up)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


LOOPBACK = "127.0.0.1"


def loopback_conf(master: str) -> dict[str, str]:
    """The driver's addresses for a local master when ``SPARK_LOCAL_IP`` is unset: 127.0.0.1.

    Spark otherwise binds the driver (RPC, block manager, UI) to every interface. A
    cluster master keeps Spark's choice: its executors must reach the driver.
    """
    if not master.startswith("local") or os.environ.get("SPARK_LOCAL_IP"):
        return {}
    return {"spark.driver.bindAddress": LOOPBACK, "spark.driver.host": LOOPBACK}


# Spark's default spark.redaction.regex: matching conf keys and values are hidden in its UI and event logs
SPARK_REDACTION_REGEX = "(?i)secret|password|token|access[.]?key"


def executor_secrets(settings: Settings) -> dict[str, str]:
    """The Redis password for the executors, as ``spark.executorEnv.<redis.password_env>``, when the driver has it.

    Publishing's scoring writes entries from the executors (``publishing/scoring.py``)
    and reads the password from their environment; on a cluster only Spark can put it
    there. Spark redacts conf keys matching ``spark.redaction.regex`` in its UI, REST API
    and event logs; an environment variable name the regex does not match is added to it.
    """
    name = settings.redis.password_env
    password = os.environ.get(name)
    if not password:
        return {}
    key = f"spark.executorEnv.{name}"
    conf = {key: settings.spark.conf.get(key, password)}
    regex = settings.spark.conf.get("spark.redaction.regex", SPARK_REDACTION_REGEX)
    try:
        redacted = re.search(regex, key) is not None
    except re.error:  # a Java pattern Python does not read: add the name to be sure
        redacted = False
    if not redacted:
        conf["spark.redaction.regex"] = f"{regex}|{re.escape(name)}"
    return conf


def get_spark(settings: Settings, app_name: str = "looper") -> SparkSession:
    """Get or create the session with Delta and the configured master and settings.

    With ``spark.connect`` set (and not under spark-submit), a client session of that Spark
    Connect server, started here first when it is local and not up yet.
    """
    if settings.spark.connect and not under_spark_submit():
        return connect_session(settings, app_name)
    from looper_common.lake.connect_server import CONNECT_CLIENT_VARS

    for var in CONNECT_CLIENT_VARS:  # inherited from a process that was a Connect client: not this session
        os.environ.pop(var, None)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    defaults = {"spark.sql.warehouse.dir": os.path.join(settings.home, "var", "spark-warehouse")}
    if not under_spark_submit():  # spark-submit already chose the master and shipped the jars
        builder = builder.master(settings.spark.master)
        jars = delta_jars(settings)
        if jars:
            builder = builder.config("spark.jars", ",".join(jars))
        if settings.spark.py_files:  # what spark-submit's --py-files would ship to the executors
            builder = builder.config("spark.submit.pyFiles", settings.spark.py_files)
        if not settings.spark.master.startswith("local"):  # executors elsewhere: the configured Python
            builder = builder.config("spark.pyspark.python", settings.spark.python)
        defaults.update(loopback_conf(settings.spark.master))
        if defaults.get("spark.driver.bindAddress") == LOOPBACK:  # the UI binds to SPARK_LOCAL_IP only
            os.environ["SPARK_LOCAL_IP"] = LOOPBACK
    options = {**defaults, **DELTA_CONF, **settings.spark.conf, **executor_secrets(settings)}
    for key, value in options.items():
        builder = builder.config(key, value)
    if under_spark_submit():
        _check_submitted_jars(app_name, options)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its gateway logs every connection at INFO
    return spark


def connect_session(settings: Settings, app_name: str) -> SparkSession:
    """A client session of the ``spark.connect`` server (its Delta jars and settings are the server's)."""
    from looper_common.lake.connect_server import ensure_server

    ensure_server(settings)
    logging.getLogger(__name__).info("Spark: a client of the Spark Connect server %s", settings.spark.connect)
    return SparkSession.builder.remote(settings.spark.connect).appName(app_name).getOrCreate()


def is_remote(spark: SparkSession) -> bool:
    """True for a Spark Connect client session (no SparkContext on this side)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _check_submitted_jars(app_name: str, options: Mapping[str, str]) -> None:
    """Under a bare spark-submit without ``--jars``, one line naming the missing Delta jars.

    The context (spark-submit's settings, the same options the builder would give it) is
    created first, without a session, so Delta's absent session extension is not tried.
    """
    conf = SparkConf().setAppName(app_name).setAll(list(options.items()))
    context = SparkContext.getOrCreate(conf)
    missing = missing_in(session_jars(dict(context.getConf().getAll()), os.environ.get("SPARK_HOME")))
    if missing:
        context.stop()
        raise MissingJars(missing, "not given to spark-submit")


def _sql_literal(value: object) -> str:
    if isinstance(value, date):
        return f"DATE'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def dataframe(spark: SparkSession, uri: str, version: int | None = None) -> DataFrame:
    """The table at ``uri`` (at ``version`` when given) as a DataFrame."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(uri)


_OPERATORS = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
              ">=": operator.ge}


def filter_column(filters: Sequence[tuple[str, str, object]]) -> F.Column:
    """The delta-rs style filters ``[(column, op, value)]`` as one Spark condition."""
    condition = F.lit(True)
    for column, op, value in filters:
        if op == "md5<":  # delta.SAMPLE_OP: the same sample as delta-rs' where_sql
            test = F.substring(F.md5(F.col(column).cast("string")), 1, len(str(value))) < F.lit(value)
        elif op == "in":
            test = F.col(column).isin(list(value))
        else:
            test = _OPERATORS[op](F.col(column), F.lit(value))
        condition = condition & test
    return condition


@contextlib.contextmanager
def _session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """``key`` set to ``value`` for the block (Spark has no per-write option for some settings)."""
    saved = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if saved is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, saved)


def replace_partition(uri: str, spec: TableSpec, rows: DataFrame, where: Mapping[str, object]) -> None:
    """Atomically replace the rows matching ``where`` (partition values) with ``rows``."""
    spark = rows.sparkSession
    predicate = " AND ".join(f"{column} = {_sql_literal(value)}" for column, value in where.items())
    writer = (
        rows.select(*spec.columns).write.format("delta").mode("overwrite")
        .option("replaceWhere", predicate).partitionBy(*spec.partition_by)
    )
    if not set(spec.partition_by) <= set(where):
        writer.save(uri)
        return
    # ``where`` fixes every partition column, so all the rows go to one partition: one open
    # writer is enough, and Spark then skips sorting every row by partition first.
    with _session_conf(spark, "spark.sql.maxConcurrentOutputFileWriters", "1"):
        writer.save(uri)


def insert_new(uri: str, spec: TableSpec, rows: DataFrame, partitions: Mapping[str, Sequence[object]]) -> int:
    """Insert the rows whose key is not in the table yet (SQL ``MERGE INTO``, insert-only); returns how many."""
    spark = rows.sparkSession
    view = f"looper_source_{abs(hash((uri, id(rows))))}"
    rows.select(*spec.columns).createOrReplaceTempView(view)
    condition = " AND ".join(
        [f"t.{k} = s.{k}" for k in spec.key]
        + [f"t.{c} IN ({', '.join(_sql_literal(v) for v in values)})" for c, values in partitions.items() if values]
    )
    location = uri.replace("`", "``")
    try:
        metrics = spark.sql(
            f"MERGE INTO delta.`{location}` AS t USING {view} AS s ON {condition} WHEN NOT MATCHED THEN INSERT *"
        ).first()
    finally:
        spark.catalog.dropTempView(view)
    return int(metrics["num_inserted_rows"])
