"""The marginal cost of a blueprint-day: N blueprints through one simulated day on the embedded stack.

For each N of ``--counts`` (default 1 and 10): N blueprints (copies of
``notification_send`` named ``bench_000``...) in a scratch blueprints folder, scratch
stores (lake, MLflow's SQLite, Airflow home, a throwaway redis-server, flushed per N);
one simulated day of ``--users`` users per blueprint through the real SDK (as
``make demo``'s first day), then the DAGs for that day (``airflow dags test``, as the
demo runs it; the DAG file parses all N blueprints each time). ``--layout blueprint``:
each blueprint's DAG once, one after the other. ``--layout stage``: the one stage DAG
of all N (``dags.layout: stage``), each stage one process for every blueprint.
Measured per DAG run: wall time and CPU seconds of all its processes
(``RUSAGE_CHILDREN``: Airflow, every job, spark-submit's JVMs) plus those of the Spark
Connect server the join uses (stopped before each N, so each N pays its start).

The marginal cost of a blueprint-day is (cost at the largest N - cost at N = 1) /
(largest N - 1), in CPU seconds and wall seconds; the goal is at most 30 CPU s. Each
run's figures are printed as it ends, so an interrupted run still shows how the cost
of one more blueprint grows. There is no baseline: the figure is an absolute cost.

    python bench/bench_blueprint_days.py                  # N = 1, 10 at 2,000 users
    python bench/bench_blueprint_days.py --counts 1,10,100
    python bench/bench_blueprint_days.py --layout stage --counts 1,10,100
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import _common as C
import redis
import yaml
from bench_dag import TASKS, children_cpu_s, load_samples, scratch_env  # puts scripts/ on the path
from demo import demo_simulator  # noqa: E402  (scripts/demo.py)

from looper_common.contracts import policy_store  # noqa: E402
from looper_common.contracts.blueprint import load_blueprints  # noqa: E402
from looper_common.dag_runs import run_dag, task_seconds  # noqa: E402
from looper_common.lake.engine import Lake  # noqa: E402
from looper_common.lake.tables import MONITOR_SERVING  # noqa: E402

TEMPLATE = "notification_send"
RUN_DATE = date(2026, 5, 2)  # a date no other benchmark or test uses (Data Docs go under var/validation)
SEED = 7
TARGET_CPU_S = 30.0


def write_blueprints(folder: Path, count: int) -> list[str]:
    template = yaml.safe_load((C.ROOT / "blueprints" / f"{TEMPLATE}.yaml").read_text())
    names = [f"bench_{i:03d}" for i in range(count)]
    for name in names:
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({**template, "name": name}))
    return names


def connect_cpu_s() -> float:
    """User + system seconds so far of the Spark Connect server's processes (0 when none runs)."""
    from looper_common.contracts.config import load_settings
    from looper_common.lake.connect_server import ConnectAddress, state_dir

    settings = load_settings(home=C.ROOT)
    if not settings.spark.connect:
        return 0.0
    pid_file = state_dir(settings, ConnectAddress.parse(settings.spark.connect)) / "server.pid"
    if not pid_file.exists():
        return 0.0
    group, ticks = int(pid_file.read_text()), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp: the server and its children (it is a session leader)
            ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def stop_connect_server() -> None:
    from looper_common.contracts.config import load_settings
    from looper_common.lake.connect_server import stop

    settings = load_settings(home=C.ROOT)
    if settings.spark.connect:
        stop(settings)


def run_count(count: int, users: int, scratch: Path, redis_url: str, layout: str) -> list[dict]:
    """N blueprints through one day; one dict per DAG run (blueprint, wall, cpu, per-task seconds)."""
    folder = scratch / "blueprints"
    folder.mkdir(parents=True)
    names = write_blueprints(folder, count)
    env = {**scratch_env(scratch, redis_url, scratch / "airflow"), "LOOPER_BLUEPRINTS_DIR": str(folder),
           "LOOPER_DAGS_LAYOUT": layout}
    stop_connect_server()
    redis.Redis.from_url(redis_url).flushdb()
    subprocess.run(["bash", str(C.ROOT / "scripts" / "airflow.sh"), "init"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    blueprints = load_blueprints(folder)
    from looper_common.simulate.scenarios import SCENARIOS

    SCENARIOS.update({name: SCENARIOS[TEMPLATE] for name in names})  # the copies' traffic: the template's
    started = time.perf_counter()
    for i, name in enumerate(names):
        simulator = demo_simulator(redis_url, blueprints, name, users=users, seed=SEED + i, start=RUN_DATE)
        simulator.run_day(0)
        if simulator.client.flush():
            raise SystemExit(f"{name}: the SDK could not send every event")
    print(f"N={count}: {count} x {users:,} users simulated in {time.perf_counter() - started:.0f} s", flush=True)
    log_dir = scratch / "logs"
    log_dir.mkdir()
    runs = []
    for name in (names if layout == "blueprint" else ["stages_daily"]):  # the stage DAG: looper_stages_daily
        cpu = children_cpu_s() + connect_cpu_s()
        with load_samples() as load:
            wall = run_dag(name, RUN_DATE, log_dir, env=env)
        runs.append({"blueprint": name, "wall": wall, "cpu": children_cpu_s() + connect_cpu_s() - cpu,
                     "load": max(load),
                     "tasks": task_seconds(log_dir / f"{name}-{RUN_DATE}.log")})
        print(f"N={count} {name}: {wall:.0f} s wall, {runs[-1]['cpu']:.0f} CPU s (load up to {max(load):.1f})",
              flush=True)
    # every blueprint went through every stage: the monitor (the last) wrote its serving rows. One that
    # failed a stage would make the cost per blueprint look lower. (A day's challenger may be kept out of
    # production by evaluate_models, so a published policy is not the test.)
    monitored = set(Lake(env["LOOPER_LAKE_ROOT"]).read(MONITOR_SERVING, columns=["blueprint"]).table["blueprint"]
                    .to_pylist())
    client = redis.Redis.from_url(redis_url)
    published = sum(client.get(policy_store.active_key(name)) is not None for name in names)
    print(f"N={count}: {len(monitored & set(names))} of {count} blueprints through every stage, {published} "
          "published a policy", flush=True)
    if not set(names) <= monitored:
        raise SystemExit(f"N={count}: {sorted(set(names) - monitored)} did not reach the monitor: see {log_dir}")
    return runs


def report(results: dict[int, list[dict]], users: int, layout: str) -> str:
    counts = sorted(results)
    rows = []
    for n in counts:
        runs = results[n]
        cpu, wall = sum(r["cpu"] for r in runs), sum(r["wall"] for r in runs)
        rows.append([n, f"{wall:.0f}", f"{cpu:.0f}", f"{wall / n:.0f}", f"{cpu / n:.0f}",
                     f"{min(r['load'] for r in runs):.1f}-{max(r['load'] for r in runs):.1f}"])
    shape = ("each blueprint's DAG once (`airflow dags test`, one after the other)" if layout == "blueprint" else
             "the one stage DAG of all N once (`dags.layout: stage`: each stage one process for every blueprint)")
    lines = [
        f"N blueprints (copies of `{TEMPLATE}`), one simulated day of {users:,} users each, then {shape} on the "
        "embedded stack. CPU is every process of the runs (Airflow, jobs, JVMs) and the Spark Connect server's "
        "(stopped before each N).",
        "",
        C.table(["N", "wall (s)", "CPU (s)", "wall per blueprint-day (s)", "CPU per blueprint-day (s)",
                 "1-min load"], rows),
    ]
    if len(counts) > 1:
        lo, hi = counts[0], counts[-1]

        def total(n: int, key: str) -> float:
            return sum(r[key] for r in results[n])

        marginal_cpu = (total(hi, "cpu") - total(lo, "cpu")) / (hi - lo)
        marginal_wall = (total(hi, "wall") - total(lo, "wall")) / (hi - lo)
        lines += ["", f"Marginal blueprint-day (N = {lo} → {hi}): {marginal_cpu:.0f} CPU s, "
                  f"{marginal_wall:.0f} s wall. "
                  + C.verdict(marginal_cpu <= TARGET_CPU_S, f"goal ≤ {TARGET_CPU_S:.0f} CPU s")]
    per_task = {t: C.median([r["tasks"].get(t, float("nan")) for runs in results.values() for r in runs])
                for t in (*TASKS, "monitor_blueprint")}
    lines += ["", "Median wall seconds per task over all runs: "
              + ", ".join(f"{t} {s:.0f}" for t, s in per_task.items()) + "."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--counts", default="1,10", help="comma-separated N (default 1,10)")
    p.add_argument("--users", type=int, default=2000, help="users (one decision each) per blueprint (default 2,000)")
    p.add_argument("--layout", choices=["blueprint", "stage"], default="blueprint",
                   help="DAG layout (dags.layout): a DAG per blueprint, or one per schedule with a task per stage")
    p.add_argument("--keep", action="store_true")
    C.add_docs_option(p)
    args = p.parse_args(argv)
    counts = [int(n) for n in args.counts.split(",")]
    results: dict[int, list[dict]] = {}
    validation = C.ROOT / "var" / "validation"
    with C.temp_dir("looper-bench-blueprint-days-", args.keep) as scratch, C.redis_server(None) as url:
        try:
            for n in counts:
                results[n] = run_count(n, args.users, scratch / f"n{n}", url, args.layout)
        finally:
            for folder in validation.glob("bench_*"):
                shutil.rmtree(folder, ignore_errors=True)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    body = report(results, args.users, args.layout) + f"\n\n`uptime` at the end: `{uptime}`."
    print("\n" + body)
    if C.docs_wanted(args):
        key = "blueprint_days" if args.layout == "blueprint" else "blueprint_days_stage"
        title = "Marginal cost of a blueprint-day" + ("" if args.layout == "blueprint" else ", stage layout")
        C.write_section(key, title, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
