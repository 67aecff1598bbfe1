"""One full DAG run on 1,000,000 decisions: wall time per task.

The simulator serves one day of ``notification_send`` traffic through the real SDK
(``get_decisions`` in batches, ``log_observations_batch``), one decision per user, as
``make demo`` does on its first day; then the blueprint's DAG runs once for that day
exactly as the demo runs it (``airflow dags test``: ingest_events, join_feedback,
validate_training_set, train_models, evaluate_models, tune_policy, publish_policies,
monitor_blueprint; join_feedback a spark-submit, the others plain processes). The stream
then holds the day's decisions and the observations due by its end; the decisions of its
first half mature (12h windows), are trained and evaluated on, and every unit gets a
policy entry. The same is done first at the demo's
size (2,000 decisions), so each task's fixed cost shows beside its size-dependent one.

There is no baseline to take a ratio against: the report is the time per task, the rows
each task handled (from the jobs' own log lines) and the load while it ran. The lake,
MLflow's SQLite store, Airflow's home and the Redis server are scratch (under /tmp,
removed at the end unless --keep).

    python bench/bench_dag.py                 # 1,000,000 decisions (and 2,000 beside it)
    python bench/bench_dag.py --quick         # 50,000 decisions (and 2,000)
    python bench/bench_dag.py --small 0       # skip the demo-size run
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import _common as C
import redis

sys.path.insert(0, str(C.ROOT / "scripts"))
from demo import demo_simulator  # noqa: E402  (scripts/ is not a package)

from looper_common.contracts.blueprint import load_blueprints  # noqa: E402
from looper_common.dag_runs import run_dag, task_seconds  # noqa: E402

BLUEPRINT = "notification_send"
# not a date the demo (2026-01-01..) or the DAG test (2026-03-01..) uses: validate_training_set
# writes its Data Docs under <home>/var/validation/<blueprint>/<date>, outside the scratch folder
RUN_DATE = date(2026, 5, 1)
SEED = 7
TASKS = ("ingest_events", "join_feedback", "validate_training_set", "train_models",
         "evaluate_models", "tune_policy", "publish_policies", "monitor_blueprint")

# what each job logs about the rows it handled (the job's logger name, then INFO)
_ROWS = {
    "ingest_events": re.compile(r"ingest_events INFO done: (?P<events>\d+) events in (?P<batches>\d+) batch\(es\)"
                                r".*?: (?P<decisions>\d+) new decisions, (?P<observations>\d+) new observations, "
                                r"(?P<quarantined>\d+) quarantined"),
    "join_feedback": re.compile(r"join_feedback INFO join statistics: (?P<json>\{.*?\})"),
    "validate_training_set": re.compile(r"validate_training_set INFO .*?: (?P<rows>\d+) rows, "
                                        r"(?P<failed>\d+) failed expectation"),
    "train_models": re.compile(r"train_models INFO (?P<rows>\d+) matured examples"),
    "evaluate_models": re.compile(r"evaluate_models INFO OPE on (?P<rows>\d+) decisions"),
    "tune_policy": re.compile(r"tune_policy INFO tuning \S+ v\d+ on (?P<rows>\d+) decisions"),
    "publish_policies": re.compile(r"publish_policies INFO \S+: (?P<units>\d+) entries of (?P<version>\S+) "
                                   r"in (?P<batches>\d+) batch"),
}
_CHALLENGER = re.compile(r"train_models INFO (\S+) v\d+ is the challenger")
_TRIAL = re.compile(r"tune_policy INFO trial \d+/(\d+)")


@dataclass
class DagRun:
    """One simulated day and its DAG run."""

    decisions: int
    observations: int
    simulate_s: float
    dag_s: float
    cpu_s: float
    load: list[float]
    seconds: dict[str, float]
    rows: dict[str, dict] = field(default_factory=dict)


def task_rows(log_path: Path) -> dict[str, dict]:
    """What each task reports having handled, from its log lines in an `airflow dags test` log."""
    found: dict[str, dict] = {}
    challengers, trials = [], 0
    for line in log_path.read_text(errors="replace").splitlines():
        for task, pattern in _ROWS.items():
            match = pattern.search(line)
            if match and task not in found:
                values = match.groupdict()
                found[task] = json.loads(values["json"]) if "json" in values else values
        if match := _CHALLENGER.search(line):
            challengers.append(match[1])
        if match := _TRIAL.search(line):
            trials = int(match[1])
    found.setdefault("train_models", {})["models"] = challengers
    found.setdefault("tune_policy", {})["trials"] = trials
    return found


def describe_rows(task: str, rows: dict[str, dict]) -> str:
    """The rows a task handled, in words, for the report."""
    r = rows.get(task, {})
    n = lambda key: f"{int(r[key]):,}" if key in r else "?"  # noqa: E731
    if task == "ingest_events":
        return (f"{n('events')} events ({n('decisions')} decisions, {n('observations')} observations, "
                f"{n('quarantined')} quarantined) in {n('batches')} batch(es)")
    if task == "join_feedback":
        return f"{n('matured_decisions')} decisions matured → {n('examples')} examples"
    if task == "validate_training_set":
        return f"{n('rows')} rows, {n('failed')} failed expectations"
    if task == "train_models":
        return f"{n('rows')} examples; {len(r.get('models', []))} model(s) registered"
    if task == "evaluate_models":
        return f"OPE on {n('rows')} decisions"
    if task == "tune_policy":
        return f"{n('rows')} decisions, {r.get('trials', 0)} trials"
    if task == "publish_policies":
        return f"{n('units')} units published"
    return ""


@contextlib.contextmanager
def load_samples(every_s: float = 5.0) -> Iterator[list[float]]:
    """The 1-minute load average, sampled every ``every_s`` while the block runs."""
    samples = [os.getloadavg()[0]]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every_s):
            samples.append(os.getloadavg()[0])

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()
        samples.append(os.getloadavg()[0])


def children_cpu_s() -> float:
    """User + system seconds of the finished child processes (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def scratch_env(scratch: Path, redis_url: str, airflow_home: Path) -> dict[str, str]:
    """The environment of a DAG run against scratch stores (as tests/dags/test_dag_run.py sets it)."""
    return {
        **os.environ,
        "LOOPER_HOME": str(C.ROOT),
        "LOOPER_LAKE_ROOT": str(scratch / "lake"),
        "LOOPER_REDIS_URL": redis_url,
        "LOOPER_MLFLOW_TRACKING_URI": f"sqlite:///{scratch}/mlflow.db",
        "LOOPER_MLFLOW_ARTIFACT_ROOT": str(scratch / "artifacts"),
        "AIRFLOW_HOME": str(airflow_home),
    }


def simulate_and_run(decisions: int, scratch: Path, redis_url: str, airflow_home: Path) -> DagRun:
    """Simulate one day of ``decisions`` decisions, then run the DAG for it."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    scratch.mkdir(parents=True)
    blueprints = load_blueprints(C.ROOT / "blueprints")
    started = time.perf_counter()
    simulator = demo_simulator(redis_url, blueprints, BLUEPRINT, users=decisions, seed=SEED, start=RUN_DATE)
    stats = simulator.run_day(0)
    unsent = simulator.client.flush()
    if unsent or simulator.client.dropped_events:
        raise SystemExit(f"the SDK could not send {unsent} event(s) ({simulator.client.dropped_events} dropped)")
    simulate_s = time.perf_counter() - started
    print(f"{decisions:,} decisions: simulated in {simulate_s:.0f} s ({stats.observations_sent:,} observations "
          f"sent, {stats.observations_pending:,} due later); Redis holds "
          f"{client.info('memory')['used_memory'] / 2**20:,.0f} MiB", flush=True)
    observations = stats.observations_sent
    del simulator  # free the population's features before the DAG's JVMs start
    gc.collect()
    log_dir = scratch / "logs"
    log_dir.mkdir()
    cpu = children_cpu_s()
    with load_samples() as load:
        dag_s = run_dag(BLUEPRINT, RUN_DATE, log_dir, env=scratch_env(scratch, redis_url, airflow_home))
    cpu_s = children_cpu_s() - cpu
    log_path = log_dir / f"{BLUEPRINT}-{RUN_DATE}.log"
    run = DagRun(decisions=stats.decisions, observations=observations, simulate_s=simulate_s, dag_s=dag_s,
                 cpu_s=cpu_s, load=load, seconds=task_seconds(log_path), rows=task_rows(log_path))
    print(f"{decisions:,} decisions: DAG in {dag_s:.0f} s (load {min(load):.1f}-{max(load):.1f}): "
          + ", ".join(f"{t} {run.seconds.get(t, float('nan')):.0f} s" for t in TASKS), flush=True)
    check_rows(run)
    return run


def check_rows(run: DagRun) -> None:
    """Every task ran and handled what the simulator sent; exits otherwise."""
    problems = [f"{t}: no wall time in the log" for t in TASKS if t not in run.seconds]
    ingest = run.rows.get("ingest_events", {})
    if int(ingest.get("decisions", -1)) != run.decisions:
        problems.append(f"ingest_events landed {ingest.get('decisions')} decisions of {run.decisions}")
    if int(ingest.get("observations", -1)) != run.observations:
        problems.append(f"ingest_events landed {ingest.get('observations')} observations of {run.observations}")
    published = int(run.rows.get("publish_policies", {}).get("units", -1))
    if published != run.decisions:  # one decision per user: every user is a unit
        problems.append(f"publish_policies published {published} units for {run.decisions} users")
    if problems:
        raise SystemExit("the DAG run is incomplete:\n  " + "\n  ".join(problems))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="50,000 decisions")
    p.add_argument("--decisions", type=int,
                   help="decisions on the run date, one per simulated user (default 1,000,000; quick 50,000)")
    p.add_argument("--small", type=int, default=2000,
                   help="also run the DAG at this size first, the demo's (default 2,000; 0 skips it)")
    p.add_argument("--redis-url", help="an empty Redis database (default: a throwaway redis-server)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (lake, MLflow, Airflow, logs)")
    C.add_docs_option(p)
    args = p.parse_args(argv)
    args.decisions = args.decisions or (50_000 if args.quick else 1_000_000)
    args.docs = C.docs_wanted(args)
    return args


def report(runs: dict[int, DagRun], large: int, small: int | None) -> str:
    """The per-task table and the notes under it."""
    big, little = runs[large], runs.get(small) if small else None
    headers = ["task", f"rows handled ({large:,} decisions)", f"{large:,} (s)"]
    if little:
        headers += [f"{small:,} (s)", "size-dependent (s)"]
    rows = []
    for task in TASKS:
        row = [f"`{task}`", describe_rows(task, big.rows), f"{big.seconds[task]:.0f}"]
        if little:
            row += [f"{little.seconds[task]:.0f}", f"{round(big.seconds[task] - little.seconds[task]):+d}"]
        rows.append(row)

    def outside(run: DagRun) -> float:
        return run.dag_s - sum(run.seconds.values())

    row = ["`airflow dags test` start-up and hand-overs", "", f"{outside(big):.0f}"]
    if little:
        row += [f"{outside(little):.0f}", f"{round(outside(big) - outside(little)):+d}"]
    rows.append(row)
    row = ["**DAG**", f"CPU {big.cpu_s:,.0f} s (all processes)", f"**{big.dag_s:.0f}**"]
    if little:
        row += [f"**{little.dag_s:.0f}**", f"**{round(big.dag_s - little.dag_s):+d}**"]
    rows.append(row)
    load = "; ".join(
        f"{r.decisions:,} decisions: {min(r.load):.1f}-{max(r.load):.1f} (CPU {r.cpu_s:,.0f} s for {r.dag_s:,.0f} s)"
        for r in runs.values())
    sizes = (
        f"`{BLUEPRINT}`, one simulated day ({RUN_DATE}, seed {SEED}): {big.decisions:,} users with one decision "
        f"each, served through the SDK's batch API, and the {big.observations:,} observations due by the day's end "
        f"({big.simulate_s:.0f} s to simulate, not part of the DAG). Then one `airflow dags test` of "
        f"`looper_{BLUEPRINT}` for that day, as `scripts/demo.py` runs it, on scratch stores (empty lake, "
        "MLflow and Airflow home; a throwaway redis-server): the first day of a demo, at a larger size. "
        "Decisions of the day's first half mature (12h windows), so train, evaluate (which promotes the first "
        "champion) and tune work on about half of them, and every user gets a policy entry."
        + (f" The same run at the demo's size ({small:,} decisions) comes first; the last column is the "
           "difference, what the size adds to each task's fixed cost (JVM and Python start-up, session, "
           "Delta log, MLflow)." if little else "")
    )
    notes = "\n".join([
        "Wall times per task come from the `[DAG TEST]` start and end lines of the log; rows from the jobs' own "
        "log lines. No baseline ratio: a per-task breakdown has nothing to divide by, so this section reports "
        "times only, and the Summary row does too.",
        f"- 1-minute load average while each DAG ran (sampled every 5 s): {load}.",
    ])
    return "\n\n".join([sizes, C.table(headers, rows), notes])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [n for n in (args.small, args.decisions) if n]
    validation = C.ROOT / "var" / "validation" / BLUEPRINT / str(RUN_DATE)
    validation_existed = validation.exists()
    runs: dict[int, DagRun] = {}
    with C.temp_dir("looper-bench-dag-", keep=args.keep) as scratch, C.redis_server(args.redis_url) as url:
        if args.keep:
            print(f"scratch folder (kept): {scratch}")
        airflow_home = scratch / "airflow"
        started = time.perf_counter()
        subprocess.run(["bash", str(C.ROOT / "scripts" / "airflow.sh"), "init"], check=True,
                       env=scratch_env(scratch, url, airflow_home), stdout=subprocess.DEVNULL)
        print(f"Airflow metadata database migrated in {time.perf_counter() - started:.0f} s (not timed below)",
              flush=True)
        try:
            for n in sizes:
                runs[n] = simulate_and_run(n, scratch / f"d{n}", url, airflow_home)
        finally:
            if not validation_existed and not args.keep:
                shutil.rmtree(validation, ignore_errors=True)
    text = report(runs, args.decisions, args.small if args.small != args.decisions else None)
    print()
    print(text)
    if args.docs:
        C.write_section("dag", f"One DAG run on {args.decisions:,} decisions: wall time per task", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
