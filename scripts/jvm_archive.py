"""Write the class-data-sharing archive of the local Spark driver JVM (run by `make bootstrap`).

Every DAG task is a fresh spark-submit JVM that loads the same ~15,000 classes of
Spark, Delta and their libraries before doing any work. This script runs a small
Delta workload (create, MERGE, partition replace, filtered read, history, toPandas)
in a JVM started with ``-XX:ArchiveClassesAtExit``; the archive it leaves is mapped by
every later driver JVM through ``-XX:SharedArchiveFile`` in conf/local.yaml. The
archive is only valid for the JVM and classpath that wrote it: bootstrap rewrites it
when they change, and a JVM given a missing or stale archive starts without it.

Usage (what bootstrap runs): spark-submit --conf spark.driver.extraJavaOptions=
"... -XX:ArchiveClassesAtExit=var/jvm/spark-driver.jsa" --jars ... scripts/jvm_archive.py
"""

from __future__ import annotations

import sys
import tempfile
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def workload(spark, root: str) -> None:
    """The Delta operations the jobs use, on a few rows."""
    from pyspark.sql import functions as F

    from looper_common.lake.tables import BRONZE_OBSERVATIONS, Lake, merge_new_rows, replace_partition

    lake = Lake(root)
    rows = spark.createDataFrame(
        [(f"e{i}", f"d{i}", "bp", "click", 1.0, date(2026, 1, 1)) for i in range(100)],
        "event_id string, decision_id string, blueprint string, name string, value double, date date",
    ).withColumn("ts", F.current_timestamp())
    merge_new_rows(spark, lake, BRONZE_OBSERVATIONS, rows, {"blueprint": ["bp"], "date": [date(2026, 1, 1)]})
    replace_partition(lake, BRONZE_OBSERVATIONS, rows, {"blueprint": "bp", "date": date(2026, 1, 1)})
    read = lake.read(spark, BRONZE_OBSERVATIONS).where(F.col("date") == F.lit(date(2026, 1, 1)))
    read.groupBy("name").agg(F.count(F.lit(1)), F.median("value")).collect()
    read.toPandas()
    lake.version(spark, BRONZE_OBSERVATIONS)


def main() -> int:
    from looper_common.contracts.config import load_settings
    from looper_common.lake.spark import get_spark

    spark = get_spark(load_settings(), "jvm_archive")
    with tempfile.TemporaryDirectory(prefix="looper-jvm-archive-") as root:
        workload(spark, root)
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
