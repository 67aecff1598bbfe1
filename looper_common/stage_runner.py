"""One stage of the loop for many blueprints in one process (``jobs/run_stage.py``, ``dags.layout: stage``).

A DAG per blueprint pays a process per task: the interpreter, pandas, pyarrow, MLflow's
store, scikit-learn, Great Expectations, Airflow's task runner. With many blueprints that
fixed cost dominates a day (``docs/benchmarks.md``, "Marginal cost of a blueprint-day").
Here a stage's job runs once per blueprint inside one process: the job's own ``main`` with
``--blueprint <name>``, each in its own ``try``, the settings, blueprints and lake loaded
once (``jobrunner.preloaded``). A blueprint that fails is recorded with its reason and the
others go on; the outcome (which blueprints succeeded, which failed and why, seconds each)
is written as JSON for the DAG's next stage, which runs only the blueprints that succeeded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the DAG factory reads StageOutcome at parse time: nothing heavy here
    from looper_common.jobrunner import JobContext

log = logging.getLogger("run_stage")
UNDATED = frozenset({"ingest_events"})  # ingestion drains the streams; it has no data interval


@dataclass
class StageOutcome:
    job: str
    ok: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # blueprint -> reason
    seconds: dict[str, float] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        """Atomically: a reader sees the whole outcome or none."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> StageOutcome:
        return cls(**json.loads(path.read_text()))

    def summary(self) -> str:
        text = f"{self.job}: {len(self.ok)} blueprint(s) done"
        if self.failed:
            text += f", {len(self.failed)} failed: " + "; ".join(f"{b} ({r})" for b, r in self.failed.items())
        return text


class _Blueprint(logging.Filter):
    """Heads every log line with the blueprint being run (``<blueprint>: <message>``) and keeps its last error."""

    current: str | None = None
    last_error: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.current and not getattr(record, "blueprint_tagged", False):
            if record.levelno >= logging.ERROR:
                self.last_error = record.getMessage().strip().splitlines()[0][:500] if record.getMessage() else None
            record.msg, record.blueprint_tagged = f"{self.current}: {record.msg}", True
        return True


_TAG = _Blueprint()


def load_job(jobs_dir: Path, job: str) -> ModuleType:
    """The job's module (``<jobs_dir>/<job>.py``), whose ``main(argv)`` runs it for one blueprint."""
    path = jobs_dir / f"{job}.py"
    if not path.is_file() or job == "run_stage":
        known = sorted(p.stem for p in jobs_dir.glob("*.py") if p.stem != "run_stage")
        raise SystemExit(f"run_stage: no job {job!r} in {jobs_dir} (known: {', '.join(known)})")
    spec = importlib.util.spec_from_file_location(f"looper_job_{job}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "main", None)):
        raise SystemExit(f"run_stage: {path} has no main(argv)")
    return module


def _run_one(module: ModuleType, argv: list[str]) -> tuple[str | None, bool]:
    """Run the job's ``main``: (None, _) when it succeeded, else (the reason it did not, whether it raised).

    A job that returns non-zero or exits with a message has judged its input (a failed
    validation, an unknown blueprint): running it again gives the same answer. An
    exception may be passing (Redis or the store unreachable): it may be worth another try.
    """
    _TAG.last_error = None
    try:
        code = module.main(argv)
    except SystemExit as exit_:  # a job's one-line error (``raise SystemExit("<job>: ...")``) or exit code
        code = exit_.code
    except Exception as err:  # noqa: BLE001 - one blueprint's failure is recorded; the others go on
        log.error("failed:\n%s", traceback.format_exc().rstrip())
        return f"{type(err).__name__}: {err}", True
    if code in (None, 0):
        return None, False
    if isinstance(code, str):
        return code, False
    return f"exit code {code}" + (f": {_TAG.last_error}" if _TAG.last_error else ""), False


def _run_with_retries(module: ModuleType, argv: list[str], attempts: int, retry_delay_s: float) -> str | None:
    """:func:`_run_one`, again after ``retry_delay_s`` while it raises, at most ``attempts`` times in all."""
    for attempt in range(1, attempts + 1):
        reason, raised = _run_one(module, argv)
        if reason is None or not raised or attempt == attempts:
            return reason
        log.warning("attempt %d/%d failed (%s); again in %.0f s", attempt, attempts, reason, retry_delay_s)
        time.sleep(retry_delay_s)
    return reason


def run_blueprints(ctx: JobContext, module: ModuleType, job: str, names: Sequence[str], day: date | None,
                   env: str | None, attempts: int = 1, retry_delay_s: float = 0.0) -> StageOutcome:
    """``module``'s job for each of ``names`` in turn, in this process; the outcome of each."""
    from looper_common.jobrunner import preloaded

    outcome = StageOutcome(job)
    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.addFilter(_TAG)
    try:
        with preloaded(ctx):
            for i, name in enumerate(names, 1):
                _TAG.current = None
                log.info("%s %d/%d: %s", job, i, len(names), name)
                _TAG.current = name
                started = time.perf_counter()
                if name not in ctx.blueprints:
                    reason = ctx.blueprints.invalid.get(name) or f"not in {ctx.settings.blueprints_dir}"
                else:
                    argv = ["--blueprint", name] + (["--env", env] if env else [])
                    if job not in UNDATED:
                        argv += ["--run-date", day.isoformat()]
                    reason = _run_with_retries(module, argv, attempts, retry_delay_s)
                outcome.seconds[name] = round(time.perf_counter() - started, 3)
                if reason is None:
                    outcome.ok.append(name)
                else:
                    outcome.failed[name] = reason
                    log.error("%s failed: %s", job, reason)
    finally:
        _TAG.current = None
        for handler in handlers:
            handler.removeFilter(_TAG)
    return outcome


def run_stage(ctx: JobContext, jobs_dir: Path, args: argparse.Namespace) -> int:
    """``jobs/run_stage.py``: the job of ``args.job`` for the named blueprints (all, when none is named);
    writes the outcome to ``args.outcome``; 0 when every blueprint succeeded, else 1."""
    module = load_job(jobs_dir, args.job)
    if args.job not in UNDATED and args.run_date is None:
        raise SystemExit(f"run_stage: --run-date is required for {args.job}")
    text = args.blueprints or args.blueprint
    names = [n.strip() for n in text.split(",") if n.strip()] if text else sorted(ctx.blueprints)
    if not names:
        raise SystemExit("run_stage: no blueprint to run (--blueprints names none, and the folder has none)")
    outcome = run_blueprints(ctx, module, args.job, names, args.run_date, args.env, args.attempts,
                             args.retry_delay)
    if args.outcome:
        outcome.write(args.outcome)
    (log.error if outcome.failed else log.info)("%s", outcome.summary())
    return 1 if outcome.failed else 0
