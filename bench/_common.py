"""Shared plumbing for the benchmarks: machine facts, a throwaway Redis, Spark, the report.

Every benchmark prints a markdown table and (for full-size runs) replaces its own
section of ``docs/benchmarks.md``, delimited by ``<!-- bench:<name> -->`` markers, so
rerunning one benchmark never touches the others' numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
os.environ.setdefault("LOOPER_HOME", str(ROOT))


def add_docs_option(parser) -> None:
    """``--docs/--no-docs``: whether the run replaces its section of docs/benchmarks.md."""
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="update docs/benchmarks.md (default: on for full-size runs)",
    )


def docs_wanted(args) -> bool:
    """Full-size runs write their section unless told otherwise; quick runs only print."""
    return (not args.quick) if args.docs is None else args.docs


def machine() -> str:
    """``2 cores, AMD EPYC, 23 GiB RAM, Python 3.11.7`` for the report."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    return f"{os.cpu_count()} cores (nproc), {model}{mem}, Python {platform.python_version()}"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank on sorted data."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool, detail: str) -> str:
    return f"{'met' if ok else 'MISSED'} ({detail})"


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or append) the ``name`` section of docs/benchmarks.md."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    section = (
        f"{start}\n## {title}\n\nMeasured {stamp} on {machine()}; load average at the end "
        f"(1, 5, 15 min): {load}.\n\n{body.strip()}\n{end}"
    )
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text)
    print(f"\nwrote the {name!r} section of {DOCS.relative_to(ROOT)}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    """An empty Redis database for the benchmark, emptied again afterwards.

    With ``url`` the database must be empty (a benchmark never mixes with real data);
    without it a throwaway ``redis-server`` (no persistence) runs for the duration.
    """
    if url is not None:
        client = redis.Redis.from_url(url)
        if client.dbsize():
            raise SystemExit(f"{url} is not empty: point the benchmark at an empty database")
        try:
            yield url
        finally:
            client.flushdb()
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: run `make bootstrap`")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="looper-bench-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                break
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def temp_dir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A scratch folder under /tmp, removed afterwards unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def spark_session(scratch: Path, app_name: str):
    """The project's SparkSession (conf/<env>.yaml) with the lake and warehouse in ``scratch``."""
    from looper_common.contracts.config import load_settings
    from looper_common.lake.spark import get_spark

    settings = load_settings()
    conf = {**settings.spark.conf, "spark.sql.warehouse.dir": str(scratch / "warehouse")}
    # conf/local.yaml tunes the driver JVM for short tasks (C1 compiler only); a benchmark is
    # one long heavy run, where the optimizing compiler pays for itself
    options = conf.get("spark.driver.extraJavaOptions", "")
    conf["spark.driver.extraJavaOptions"] = " ".join(o for o in options.split() if not o.startswith("-XX:Tiered"))
    settings = settings.model_copy(
        update={
            "lake_root": str(scratch / "lake"),
            # a session of its own (not a client of the spark.connect server): the benchmarks read
            # Spark's job counts and timings through its SparkContext
            "spark": settings.spark.model_copy(update={"conf": conf, "connect": None}),
        }
    )
    return get_spark(settings, app_name), settings


@contextlib.contextmanager
def spark_jobs(spark, group: str) -> Iterator[list[int]]:
    """Tag the Spark jobs run inside the block; the list holds their count afterwards."""
    sc = spark.sparkContext
    sc.setJobGroup(group, group)
    counted: list[int] = []
    try:
        yield counted
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        counted.append(len(sc.statusTracker().getJobIdsForGroup(group)))


def spark_conf_summary(spark) -> str:
    conf = spark.sparkContext.getConf()
    keys = ("spark.master", "spark.driver.memory", "spark.sql.shuffle.partitions")
    return ", ".join(f"{k.removeprefix('spark.')}={conf.get(k, '?')}" for k in keys)
