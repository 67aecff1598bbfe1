"""The marginal cost of a blueprint-day: N blueprints through one simulated day on the embedded stack.

For each N of ``--counts`` (default 1 and 10): N blueprints (copies of
``notification_send`` named ``bench_000``...) in a scratch blueprints folder, scratch
stores (lake, MLflow's SQLite, Airflow home, a throwaway redis-server, flushed per N);
one simulated day of ``--users`` users per blueprint through the real SDK (as
``make demo``'s first day), then each blueprint's DAG once for that day, one after the
other (``airflow dags test``, as the demo runs it; the DAG file parses all N
blueprints each time). Measured per DAG run: wall time and CPU seconds of all its
processes (``RUSAGE_CHILDREN``: Airflow, every job, the JVMs).

The marginal cost of a blueprint-day is (cost at the largest N - cost at N = 1) /
(largest N - 1), in CPU seconds and wall seconds; the goal is at most 30 CPU s. Each
run's figures are printed as it ends, so an interrupted run still shows how the cost
of one more blueprint grows. There is no baseline: the figure is an absolute cost.

    python bench/bench_blueprint_days.py                  # N = 1, 10 at 2,000 users
    python bench/bench_blueprint_days.py --counts 1,10,100
"""

from __future__ import annotations

import argparse
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
from demo import demo_simulator, run_dag, task_seconds  # noqa: E402  (scripts/demo.py)

from looper_common.contracts.blueprint import load_blueprints  # noqa: E402

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


def run_count(count: int, users: int, scratch: Path, redis_url: str) -> list[dict]:
    """N blueprints through one day; one dict per DAG run (blueprint, wall, cpu, per-task seconds)."""
    folder = scratch / "blueprints"
    folder.mkdir(parents=True)
    names = write_blueprints(folder, count)
    env = {**scratch_env(scratch, redis_url, scratch / "airflow"), "LOOPER_BLUEPRINTS_DIR": str(folder)}
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
    for name in names:
        cpu = children_cpu_s()
        with load_samples() as load:
            wall = run_dag(name, RUN_DATE, log_dir, env=env)
        runs.append({"blueprint": name, "wall": wall, "cpu": children_cpu_s() - cpu, "load": max(load),
                     "tasks": task_seconds(log_dir / f"{name}-{RUN_DATE}.log")})
        print(f"N={count} {name}: {wall:.0f} s wall, {runs[-1]['cpu']:.0f} CPU s (load up to {max(load):.1f})",
              flush=True)
    return runs


def report(results: dict[int, list[dict]], users: int) -> str:
    counts = sorted(results)
    rows = []
    for n in counts:
        runs = results[n]
        cpu, wall = sum(r["cpu"] for r in runs), sum(r["wall"] for r in runs)
        rows.append([n, f"{wall:.0f}", f"{cpu:.0f}", f"{wall / n:.0f}", f"{cpu / n:.0f}",
                     f"{min(r['load'] for r in runs):.1f}-{max(r['load'] for r in runs):.1f}"])
    lines = [
        f"N blueprints (copies of `{TEMPLATE}`), one simulated day of {users:,} users each, then each "
        "blueprint's DAG once (`airflow dags test`, one after the other) on the embedded stack. CPU is every "
        "process of the runs (Airflow, jobs, JVMs).",
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
    p.add_argument("--keep", action="store_true")
    C.add_docs_option(p)
    args = p.parse_args(argv)
    counts = [int(n) for n in args.counts.split(",")]
    results: dict[int, list[dict]] = {}
    validation = C.ROOT / "var" / "validation"
    with C.temp_dir("looper-bench-blueprint-days-", args.keep) as scratch, C.redis_server(None) as url:
        try:
            for n in counts:
                results[n] = run_count(n, args.users, scratch / f"n{n}", url)
        finally:
            for folder in validation.glob("bench_*"):
                shutil.rmtree(folder, ignore_errors=True)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    body = report(results, args.users) + f"\n\n`uptime` at the end: `{uptime}`."
    print("\n" + body)
    if C.docs_wanted(args):
        C.write_section("blueprint_days", "Marginal cost of a blueprint-day", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
