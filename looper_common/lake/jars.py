"""The Delta jars Spark needs, and the one-line error when they are missing.

``make bootstrap`` fetches them once into ``spark.jars_dir`` (``.jars/``). A plain Python
job's session and ``looper submit`` hand them to Spark; a job launched by a bare
``spark-submit`` without ``--jars`` would otherwise fail deep inside Delta with
``'JavaPackage' object is not callable``, so the session checks them first.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterable, Mapping

REQUIRED = ("delta-spark_*.jar", "delta-storage-*.jar")  # what scripts/bootstrap.sh checks too
HOW = "run `make bootstrap` (it fetches them once into .jars/), then `looper submit JOB ...`"


class MissingJars(SystemExit):
    """Spark lacks the Delta jars: ends the process with one line (no traceback), like a settings error."""

    def __init__(self, missing: Iterable[str], where: str) -> None:
        names = ", ".join(missing)
        super().__init__(f"Spark is missing the Delta jars {names} ({where}): {HOW}")


def missing_in(jars: Iterable[str]) -> list[str]:
    """The patterns of :data:`REQUIRED` that no jar in ``jars`` (paths or URLs) matches."""
    names = [os.path.basename(j.rstrip("/")) for j in jars]
    return [p for p in REQUIRED if not any(fnmatch.fnmatch(n, p) for n in names)]


def jars_in_dir(jars_dir: str | None) -> list[str]:
    """Every jar in ``jars_dir`` (empty when it is unset or absent), sorted."""
    return sorted(glob.glob(os.path.join(jars_dir, "*.jar"))) if jars_dir else []


def session_jars(conf: Mapping[str, str], spark_home: str | None) -> list[str]:
    """The jars a running session has: ``spark.jars``, ``--packages`` artifacts, and ``$SPARK_HOME/jars``."""
    jars = [j for j in conf.get("spark.jars", "").split(",") if j]
    for coordinate in filter(None, conf.get("spark.jars.packages", "").split(",")):
        parts = coordinate.split(":")  # io.delta:delta-spark_2.13:4.0.0 reads as delta-spark_2.13-4.0.0.jar
        if len(parts) >= 3:
            jars.append(f"{parts[1]}-{parts[2]}.jar")
            if parts[1].startswith("delta-spark"):  # delta-storage comes along as its dependency
                jars.append(f"delta-storage-{parts[2]}.jar")
    for entry in conf.get("spark.driver.extraClassPath", "").split(os.pathsep):
        jars.extend(glob.glob(entry) if "*" in entry else [entry] if entry.endswith(".jar") else [])
    if spark_home:
        jars.extend(glob.glob(os.path.join(spark_home, "jars", "*.jar")))
    return jars
