"""``join_feedback`` on a Spark standalone cluster with one worker, then two, next to ``local[2]``.

Generates bronze decisions and observations into a scratch lake (``bench_join``'s
generator, all maturing on the run date), then starts Spark's own standalone master
and workers from the installed pyspark (``spark-class ...deploy.master.Master`` and
``...deploy.worker.Worker``, one core and ``--worker-memory`` each, every port on
127.0.0.1: master 7177, UI 8181, workers 7178+/8182+; not 7077, which the in-box
cluster uses) and runs ``join_feedback(lake, blueprint, D)`` with executors in the
workers' JVMs: first with one worker, then with a second one started, then on
``local[2]`` in the driver (the embedded default). Each configuration runs the join
``--runs`` times (it is idempotent: a rerun replaces the same partition) and keeps the
fastest. The ratio is one worker's time / two workers'; the goal is ≥ 1.6x.

The master and workers are stopped at the end, also after a failure. The machine's
load (``uptime``) is recorded before and after: on 2 cores shared with other work a
second worker's core is often busy elsewhere, which caps the ratio below 2.

    python bench/bench_join_workers.py            # 1,000,000 decisions, 500,000 observations
    python bench/bench_join_workers.py --quick    # 100,000 / 50,000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import _common as C
import pyspark
from bench_join import BLUEPRINT, RUN_DATE, make_decisions, make_observations, write_once

from looper_common.contracts.blueprint import load_blueprint
from looper_common.labels import join as feedback
from looper_common.labels.days import maturity_bounds
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS

HOST = "127.0.0.1"
MASTER_PORT, MASTER_UI = 7177, 8181
TARGET = 1.6


def spark_class(*args: str) -> list[str]:
    return [str(Path(pyspark.__file__).parent / "bin" / "spark-class"), *args]


def wait_for_port(port: int, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.5)
    raise SystemExit(f"{what} did not listen on {HOST}:{port} within {timeout:.0f} s")


class Standalone:
    """A standalone master and its workers, as processes of this benchmark; :meth:`stop` ends them all."""

    def __init__(self, scratch: Path, worker_memory: str) -> None:
        self.scratch, self.worker_memory = scratch, worker_memory
        self.env = {**os.environ, "SPARK_HOME": str(Path(pyspark.__file__).parent), "SPARK_LOCAL_IP": HOST,
                    "SPARK_LOG_DIR": str(scratch / "logs"), "SPARK_WORKER_DIR": str(scratch / "work")}
        self.procs: list[subprocess.Popen] = []

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.scratch / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.procs.append(subprocess.Popen(spark_class(*args), env=self.env, stdout=log, stderr=subprocess.STDOUT))

    def start_master(self) -> str:
        self._start("master", ["org.apache.spark.deploy.master.Master", "--host", HOST,
                               "--port", str(MASTER_PORT), "--webui-port", str(MASTER_UI)])
        wait_for_port(MASTER_PORT, "the master")
        return f"spark://{HOST}:{MASTER_PORT}"

    def add_worker(self) -> None:
        n = len(self.procs) - 1  # workers so far
        port, ui = MASTER_PORT + 1 + n, MASTER_UI + 1 + n
        self._start(f"worker{n + 1}", ["org.apache.spark.deploy.worker.Worker", f"spark://{HOST}:{MASTER_PORT}",
                                       "--host", HOST, "--port", str(port), "--webui-port", str(ui),
                                       "--cores", "1", "--memory", self.worker_memory,
                                       "--work-dir", str(self.scratch / f"work{n + 1}")])
        wait_for_port(port, f"worker {n + 1}")
        time.sleep(3)  # registration with the master

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


@contextlib.contextmanager
def session(scratch: Path, master: str, executors: int, executor_memory: str) -> Iterator:
    """The project's session (``conf/<env>.yaml`` settings and jars) on ``master``."""
    from looper_common.contracts.config import load_settings
    from looper_common.lake.spark import get_spark

    settings = load_settings()
    conf = {**settings.spark.conf, "spark.sql.warehouse.dir": str(scratch / "warehouse"),
            "spark.driver.memory": "2g", "spark.driver.host": HOST, "spark.driver.bindAddress": HOST,
            "spark.sql.shuffle.partitions": "8", "spark.default.parallelism": "4"}
    options = conf.get("spark.driver.extraJavaOptions", "")  # one long run: let the optimizing compiler work
    conf["spark.driver.extraJavaOptions"] = " ".join(o for o in options.split() if not o.startswith("-XX:Tiered"))
    if master.startswith("spark://"):
        conf.update({"spark.executor.cores": "1", "spark.executor.memory": executor_memory,
                     "spark.cores.max": str(executors), "spark.pyspark.python": sys.executable,
                     "spark.executorEnv.PYTHONPATH": str(C.ROOT)})
    settings = settings.model_copy(update={
        "lake_root": str(scratch / "lake"),
        "spark": settings.spark.model_copy(update={"master": master, "conf": conf, "connect": None}),
    })
    os.environ["SPARK_LOCAL_IP"] = HOST
    spark = get_spark(settings, f"looper-bench-join-workers-{executors}")
    try:
        if master.startswith("spark://"):
            deadline = time.monotonic() + 300
            while granted_cores() < executors:
                if time.monotonic() > deadline:
                    raise SystemExit(f"fewer than {executors} executors registered within 300 s")
                time.sleep(1)
        yield spark
    finally:
        spark.stop()


def granted_cores() -> int:
    """Cores the master has given the running application (its JSON status page)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{MASTER_UI}/json/", timeout=20) as reply:
            apps = json.load(reply).get("activeapps", [])
    except OSError:  # a busy master answers late: ask again
        return 0
    return sum(app.get("cores", 0) for app in apps)


def timed_joins(spark, scratch: Path, bp, runs: int) -> tuple[float, dict]:
    lake = Lake(str(scratch / "lake"), spark=lambda: spark, local_read_max_bytes=0)
    times, stats = [], {}
    for _ in range(runs):
        started = time.perf_counter()
        stats = feedback.join_feedback(lake, bp, RUN_DATE)
        times.append(time.perf_counter() - started)
    return min(times), stats


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="100,000 decisions, 50,000 observations")
    p.add_argument("--decisions", type=int)
    p.add_argument("--observations", type=int)
    p.add_argument("--runs", type=int, default=2, help="joins per configuration, the fastest kept (default 2)")
    p.add_argument("--worker-memory", default="2g", help="each worker's memory (default 2g)")
    p.add_argument("--executor-memory", default="1500m", help="each executor's heap (default 1500m)")
    p.add_argument("--keep", action="store_true")
    C.add_docs_option(p)
    args = p.parse_args(argv)
    decisions = args.decisions or (100_000 if args.quick else 1_000_000)
    observations = args.observations or (50_000 if args.quick else 500_000)
    bp = load_blueprint(C.ROOT / "blueprints" / f"{BLUEPRINT}.yaml")
    lo, hi = maturity_bounds(bp, RUN_DATE)
    lo_us = int(lo.timestamp()) * 1_000_000
    step_us = (int(hi.timestamp()) * 1_000_000 - lo_us) // (decisions + 1)
    parts = max(4, math.ceil(decisions / 250_000))
    load_before = uptime()
    results: dict[str, tuple[float, dict]] = {}
    with C.temp_dir("looper-bench-join-workers-", args.keep) as scratch:
        with session(scratch, "local[2]", 2, args.executor_memory) as spark:
            lake = Lake(str(scratch / "lake"), spark=lambda: spark)
            write_once(lake, spark, BRONZE_DECISIONS, make_decisions(spark, bp, decisions, lo_us, step_us, parts))
            write_once(lake, spark, BRONZE_OBSERVATIONS, make_observations(
                spark, bp, observations, decisions, lo_us, step_us, max(2, parts // 2)))
        print(f"generated {decisions:,} decisions and {observations:,} observations", flush=True)
        cluster = Standalone(scratch, args.worker_memory)
        try:
            master = cluster.start_master()
            for workers in (1, 2):
                cluster.add_worker()
                with session(scratch, master, workers, args.executor_memory) as spark:
                    results[f"{workers} worker(s)"] = timed_joins(spark, scratch, bp, args.runs)
                print(f"{workers} worker(s): {results[f'{workers} worker(s)'][0]:.1f} s; {uptime()}", flush=True)
        finally:
            cluster.stop()
        with session(scratch, "local[2]", 2, args.executor_memory) as spark:
            results["local[2]"] = timed_joins(spark, scratch, bp, args.runs)
        print(f"local[2]: {results['local[2]'][0]:.1f} s; {uptime()}", flush=True)
    examples = {name: r[1].get("examples") for name, r in results.items()}
    if len(set(examples.values())) != 1:
        raise SystemExit(f"the configurations wrote different examples: {examples}")
    one, two = results["1 worker(s)"][0], results["2 worker(s)"][0]
    ratio = one / two
    rows = [["standalone, 1 worker (1 core)", f"{one:.1f}", "1.00x"],
            ["standalone, 2 workers (1 core each)", f"{two:.1f}", f"{ratio:.2f}x"],
            ["`local[2]` (executors in the driver)", f"{results['local[2]'][0]:.1f}",
             f"{one / results['local[2]'][0]:.2f}x"]]
    body = "\n".join([
        f"`join_feedback` over {decisions:,} decisions and {observations:,} observations "
        f"({next(iter(examples.values())):,} examples), the fastest of {args.runs} runs per configuration; "
        f"workers of Spark's standalone deploy from the installed pyspark, {args.worker_memory} and one core "
        f"each, executors of {args.executor_memory}; speed-up relative to one worker.",
        "",
        C.table(["configuration", "seconds", "speed-up"], rows),
        "",
        C.verdict(ratio >= TARGET, f"two workers {ratio:.2f}x one (goal ≥ {TARGET}x)"),
        "",
        f"`uptime` before: `{load_before}`; after: `{uptime()}`. The machine has 2 cores shared with "
        "other work: the second worker only helps when a core is free for it, so the load limits this figure.",
    ])
    print("\n" + body)
    if C.docs_wanted(args):
        C.write_section("join_workers", f"`join_feedback` on 1 and 2 standalone workers ({decisions:,} decisions)",
                        body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
