"""Write the class-data-sharing archive of the local Spark driver JVM (run by `make bootstrap`).

Every DAG task is a fresh spark-submit JVM that loads the same ~15,000 classes of
Spark, Delta and their libraries before doing any work. This script runs, on a few
rows, what the delayed-feedback join does through the lake (a filtered read, a
``replaceWhere`` partition write, a ``MERGE INTO``, an aggregate, ``toArrow``) in a JVM
started with ``-XX:ArchiveClassesAtExit``; the archive it leaves is mapped by every
later driver JVM through ``-XX:SharedArchiveFile`` in conf/local.yaml. The archive is
only valid for the JVM and classpath that wrote it: bootstrap rewrites it when they
change, and a JVM given a missing or stale archive starts without it.

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
    """The Delta operations the join runs on Spark, on a few rows."""
    from pyspark.sql import functions as F

    from looper_common.lake.engine import Lake
    from looper_common.lake.tables import BRONZE_OBSERVATIONS

    lake = Lake(root, spark=lambda: spark)
    lake.ensure_tables([BRONZE_OBSERVATIONS])
    day = date(2026, 1, 1)
    rows = spark.createDataFrame(
        [(f"e{i}", f"d{i}", "bp", "click", 1.0, day) for i in range(100)],
        "event_id string, decision_id string, blueprint string, name string, value double, date date",
    ).withColumn("ts", F.current_timestamp())
    lake.insert_new(BRONZE_OBSERVATIONS, rows, {"blueprint": ["bp"], "date": [day]})
    lake.replace_partition(BRONZE_OBSERVATIONS, rows, {"blueprint": "bp", "date": day})
    read = lake.dataframe(BRONZE_OBSERVATIONS).where(F.col("date") == F.lit(day))
    read.groupBy("name").agg(F.count(F.lit(1)), F.median("value")).collect()
    read.toArrow()
    lake.read(BRONZE_OBSERVATIONS, filters=[("blueprint", "=", "bp")])


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
