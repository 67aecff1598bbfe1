"""Fixed cost of a task: process start to its first Delta query answered.

Each run is a fresh process, as an Airflow task is. Looper's task (`looper`) imports
the job plumbing, opens the lake (``jobrunner.open_lake``: every contracted table
ensured) and reads one blueprint-day of ``silver/examples`` through ``Lake.read``
(delta-rs for a selection this small). The baseline (`spark-submit`) is what every
task paid before: a cold ``spark-submit`` with the Delta jars and the project's JVM
settings, building the session and answering the same filtered read with Spark.
The baseline does the same read and also counts nothing more; the Looper side does
more (it ensures all six tables first). Runs alternate, A B A B, so drift hits both.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import _common as C

DAY = date(2026, 1, 5)
PROBE = Path(__file__).resolve()


def _probe(engine: str, root: str) -> None:
    """The measured task body (run in the child process)."""
    if engine == "looper":
        from looper_common.contracts.config import load_settings
        from looper_common.jobrunner import open_lake
        from looper_common.lake.engine import blueprint_dates
        from looper_common.lake.tables import SILVER_EXAMPLES

        settings = load_settings().model_copy(update={"lake_root": root})
        read = open_lake(settings, "bench").read(SILVER_EXAMPLES, filters=blueprint_dates("bp", DAY, DAY))
        print(read.table.num_rows, read.engine, "pyspark" in sys.modules)
    else:
        from pyspark.sql import SparkSession
        from pyspark.sql import functions as F

        spark = SparkSession.builder.getOrCreate()
        rows = (spark.read.format("delta").load(f"{root}/silver/examples")
                .where((F.col("blueprint") == "bp") & (F.col("date") == F.lit(DAY))).toArrow())
        print(rows.num_rows, "spark")


def _make_lake(root: Path, rows: int) -> None:
    import pyarrow as pa

    from looper_common.lake.engine import Lake
    from looper_common.lake.tables import SILVER_EXAMPLES, TIMESTAMP

    lake = Lake(str(root))
    lake.ensure_tables()
    n = rows
    table = pa.Table.from_pydict({
        "decision_id": [f"d{i:08d}" for i in range(n)], "label": ["clicked"] * n,
        "value": [float(i % 2) for i in range(n)],
        "n_observations": [1] * n, "first_feedback_s": [60.0] * n, "blueprint": ["bp"] * n,
        "blueprint_version": ["v1"] * n, "unit_id": [f"u{i % 1000}" for i in range(n)],
        "ts": pa.array([1_767_571_200_000_000 + i for i in range(n)], pa.int64()).cast(TIMESTAMP),
        "features": [[("x", "1.5")]] * n, "action": ["send"] * n, "propensity": [0.5] * n,
        "action_probs": [[("send", 0.5), ("skip", 0.5)]] * n, "scores": [None] * n,
        "policy_version": [None] * n, "is_default": [False] * n, "date": [DAY] * n,
    }, schema=SILVER_EXAMPLES.schema)
    lake.replace_partition(SILVER_EXAMPLES, table, {"blueprint": "bp", "date": DAY})


def _spark_submit(root: Path) -> list[str]:
    from looper_common.contracts.config import expand_home, load_settings
    from looper_common.lake.spark import DELTA_CONF, delta_jars

    settings = load_settings()
    conf = {**DELTA_CONF, **{k: expand_home(v, settings.home) for k, v in settings.spark.conf.items()}}
    submit = Path(sys.executable).parent / "spark-submit"
    command = [str(submit), "--master", "local[*]", "--jars", ",".join(delta_jars(settings))]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, str(PROBE), "--probe", "spark", "--root", str(root)]


def _timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    import pyspark

    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "SPARK_HOME": os.path.dirname(pyspark.__file__),
           "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""), "PYSPARK_PYTHON": sys.executable}
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return time.perf_counter() - started, out.stdout.strip().splitlines()[-1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe", choices=("looper", "spark"), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="3 runs each instead of 5")
    parser.add_argument("--rows", type=int, default=10_000, help="example rows in the table (default 10,000)")
    C.add_docs_option(parser)
    args = parser.parse_args(argv)
    if args.probe:
        _probe(args.probe, args.root)
        return 0
    runs = 3 if args.quick else 5
    with C.temp_dir("looper-bench-task-start") as scratch:
        _make_lake(scratch / "lake", args.rows)
        looper = [sys.executable, str(PROBE), "--probe", "looper", "--root", str(scratch / "lake")]
        baseline = _spark_submit(scratch / "lake")
        times: dict[str, list[float]] = {"looper": [], "spark-submit": []}
        answers = {}
        for i in range(runs + 1):  # the first pair warms the page cache, not counted
            for name, command in (("looper", looper), ("spark-submit", baseline)):
                seconds, answers[name] = _timed(command)
                if i:
                    times[name].append(seconds)
                print(f"{name:>12} run {i}: {seconds:5.2f} s  ({answers[name]})", flush=True)
    med = {k: C.median(v) for k, v in times.items()}
    goal = C.verdict(med["looper"] <= 3.0, f"{med['looper']:.2f} s")
    ratio = C.median([a / b for a, b in zip(times["looper"], times["spark-submit"], strict=True)])
    body = C.table(
        ["task", "median s", "min s", "max s", "first query answered by"],
        [[k, f"{med[k]:.2f}", f"{min(v):.2f}", f"{max(v):.2f}", answers[k]] for k, v in times.items()],
    ) + (
        f"\n\nRatio looper / spark-submit, pair by pair: **{ratio:.3f}** (median of {runs}); "
        f"{args.rows:,} example rows, one blueprint-day selected. Goal: ≤ 3 s — "
        f"{goal}. The Looper task also ensures the six "
        "contracted tables before its read; the answer column says the read ran on delta-rs and that pyspark "
        "was never imported (`False`)."
    )
    print("\n" + body)
    if C.docs_wanted(args):
        C.write_section("task_start", "Fixed cost of a task (process start to first Delta query)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
