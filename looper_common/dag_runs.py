"""One day of a DAG with ``airflow dags test`` (``scripts/airflow.sh``), and what its log says.

Used by ``make demo`` (``scripts/demo.py``) and the benchmarks that run whole DAG days
(``bench/bench_dag.py``, ``bench/bench_blueprint_days.py``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXIT_DAG_FAILED = 3  # scripts/demo.py's exit status when a day's DAG run failed


def dag_test_command(blueprint: str, day: date) -> list[str]:
    """`airflow dags test` of the blueprint's DAG processing ``day``, given as the run's ``run_date`` param.

    No logical date is passed: `airflow dags test` sets a run's start date to its logical
    date, so a simulated day would show in the Airflow UI as a run lasting months. The run's
    logical date is now and the day to process travels in the run's conf.
    """
    return ["bash", str(ROOT / "scripts" / "airflow.sh"), "run", "dags", "test", f"looper_{blueprint}",
            "--conf", json.dumps({"run_date": day.isoformat()})]


def run_dag(blueprint: str, day: date, log_dir: Path, env: Mapping[str, str] | None = None) -> float:
    """`airflow dags test` for one day; returns its wall time, exits on failure.

    ``env`` replaces the environment of the run (a benchmark points it at scratch stores).
    """
    started = time.perf_counter()
    log_path = log_dir / f"{blueprint}-{day}.log"
    with open(log_path, "w") as log:
        result = subprocess.run(dag_test_command(blueprint, day), stdout=log, stderr=subprocess.STDOUT,
                                cwd=ROOT, env=env)
    if result.returncode != 0 and not monitor_alerted(log_path):
        tail = "".join(open(log_path).readlines()[-40:])
        print(f"the DAG failed for {day} (full log: {log_path}):\n{tail}", file=sys.stderr)
        raise SystemExit(EXIT_DAG_FAILED)
    return time.perf_counter() - started


def monitor_alerted(log_path: Path) -> bool:
    """Whether the run failed only because the monitor raised a critical alert (the demo goes on)."""
    text = log_path.read_text(errors="replace")
    return "monitor_blueprint: " in text and "critical alert(s)" in text


_TASK_EVENT = re.compile(r"^(\S+Z) .*\[DAG TEST\] (starting|end task) task_id=(\w+)")


def task_seconds(log_path: Path) -> dict[str, float]:
    """Wall time of each task of one `airflow dags test` run, from its log, in run order."""
    started, seconds = {}, {}
    for line in log_path.read_text(errors="replace").splitlines():
        match = _TASK_EVENT.match(line)
        if match:
            ts, event, task = datetime.fromisoformat(match[1].replace("Z", "+00:00")), match[2], match[3]
            if event == "starting":
                started[task] = ts
            elif task in started:
                seconds[task] = (ts - started[task]).total_seconds()
    return seconds


_EVALUATED = re.compile(r"evaluate_models INFO done: (.*?)(?: \[airflow\.task|$)")


def promotion_outcome(log_path: Path) -> str | None:
    """What the day's evaluate_models decided, from its log (``None`` when the log has no such line)."""
    if not log_path.is_file():
        return None
    found = [m[1] for line in log_path.read_text(errors="replace").splitlines() if (m := _EVALUATED.search(line))]
    return found[-1] if found else None
