"""scripts/spark-python: the driver's Python under spark-submit, minus the installed pyspark's zips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "spark-python"


def run(pythonpath: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["LOOPER_PYTHON"] = sys.executable
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run(
        [str(SCRIPT), "-c", "import os, sys; print(sys.executable); print(os.environ.get('PYTHONPATH', '-'))"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.split("\n")
    return out[:2]


def test_drops_only_the_installed_pyspark_zips():
    site = "/v/lib/python3.11/site-packages/pyspark/python/lib"
    executable, path = run(
        f"/job:{site}/pyspark.zip:{site}/py4j-0.10.9.9-src.zip:/opt/spark/python/lib/pyspark.zip:/x y"
    )
    assert executable == sys.executable
    assert path == "/job:/opt/spark/python/lib/pyspark.zip:/x y"


def test_nothing_left_unsets_pythonpath():
    site = "/v/lib/python3.11/site-packages/pyspark/python/lib"
    assert run(f"{site}/pyspark.zip")[1] == "-"
    assert run(None)[1] == "-"
