"""What every job's thin entry point shares: arguments, logging, settings, blueprints, the lake."""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from looper_common.contracts import redis_conn
from looper_common.contracts.blueprint import Blueprint, BlueprintError, load_blueprints
from looper_common.contracts.config import ConfigError, Settings, load_settings, local_read_max_bytes
from looper_common.contracts.errors import OperatorError
from looper_common.lake.engine import Lake
from looper_common.lake.session import LazySession

T = TypeVar("T")


def run_date(text: str) -> date:
    """argparse type for ``--run-date YYYY-MM-DD``."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--run-date: {text!r} is not a date like 2026-01-31") from None


def job_parser(
    doc: str | None, *, blueprint_required: bool = True, with_run_date: bool = True
) -> argparse.ArgumentParser:
    """An argparse parser with the options every job takes (``--blueprint``, ``--run-date``, ``--env``)."""
    parser = argparse.ArgumentParser(
        description=(doc or "").strip(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--blueprint",
        required=blueprint_required,
        help="blueprint name (a file in the blueprints folder)"
        + ("" if blueprint_required else "; default: every blueprint"),
    )
    if with_run_date:
        parser.add_argument("--run-date", type=run_date, required=True, help="the data interval, YYYY-MM-DD (UTC day)")
    parser.add_argument(
        "--env", default=None, help="settings environment (conf/<env>.yaml); default $LOOPER_ENV or local"
    )
    return parser


_PRELOADED: list[JobContext] = []  # set by `preloaded` (jobs/run_stage.py): one context for many job runs


@dataclass
class JobContext:
    settings: Settings
    blueprints: dict[str, Blueprint]
    lake: Lake

    def redis(self) -> redis_conn.RedisClient:
        """A Redis client as the settings describe it (one server or a cluster, ``contracts.redis_conn``)."""
        return redis_conn.from_settings(self.settings.redis)


def setup(args: argparse.Namespace, job_name: str) -> JobContext:
    """Logging, settings and blueprints; exits with a one-line error when they are invalid.

    At exit the objects still alive are frozen (``gc.freeze``): the interpreter's
    shutdown then frees them by reference count, without the full collections that
    would traverse every module MLflow, SQLAlchemy and matplotlib loaded (about 1 CPU s
    of a task); cycles left at exit go back to the system with the process.
    """
    atexit.unregister(gc.freeze)  # once per process, however many jobs run in it
    atexit.register(gc.freeze)  # before the jobs' own handlers, so it runs after them
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {job_name} %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    sys.excepthook = _operator_errors_on_one_line(job_name, sys.__excepthook__)
    if _PRELOADED:
        settings, blueprints = _PRELOADED[-1].settings, _PRELOADED[-1].blueprints
    else:
        try:
            settings = load_settings(args.env)
            blueprints = load_blueprints(settings.blueprints_dir)
        except (ConfigError, BlueprintError) as err:
            raise SystemExit(f"{job_name}: {err}") from None
    name = getattr(args, "blueprint", None)
    if name is not None and name in blueprints.invalid:  # the others' jobs keep running
        raise SystemExit(f"{job_name}: {blueprints.invalid[name]}")
    if name is not None and name not in blueprints:
        raise SystemExit(
            f"{job_name}: --blueprint {name!r} not found in {settings.blueprints_dir} "
            f"(known: {', '.join(sorted(blueprints)) or 'none'})"
        )
    if _PRELOADED:
        return _PRELOADED[-1]
    return JobContext(settings=settings, blueprints=blueprints, lake=open_lake(settings, job_name))


@contextmanager
def preloaded(ctx: JobContext) -> Iterator[JobContext]:
    """Within it, every job's :func:`setup` returns ``ctx``: settings, blueprints and lake loaded once
    for the many blueprints one process runs a stage for (``jobs/run_stage.py``)."""
    _PRELOADED.append(ctx)
    try:
        yield ctx
    finally:
        _PRELOADED.remove(ctx)


def _operator_errors_on_one_line(job_name: str, hook):
    """An excepthook printing an :class:`OperatorError` as ``<job>: <message>``; anything else as ``hook`` does."""
    def excepthook(kind, err, tb) -> None:
        if isinstance(err, OperatorError):
            print(f"{job_name}: {err}", file=sys.stderr)
        else:
            hook(kind, err, tb)
    return excepthook


def open_lake(settings: Settings, app_name: str) -> Lake:
    """The configured lake with every contracted table created; Spark is started only if a request needs it."""
    lake = Lake(settings.lake_root, local_read_max_bytes(settings), settings.lake_storage_options,
                spark=LazySession(settings, app_name))
    lake.ensure_tables()
    return lake


@contextmanager
def loading_libraries() -> Iterator[None]:
    """Load large libraries with the cyclic collector paused, then freeze what is alive (``gc.freeze``).

    Importing MLflow (with SQLAlchemy and its ORM models) or matplotlib makes hundreds of
    thousands of objects that live as long as the process; with the collector on, the
    imports trigger full collections that traverse all of them again and again. A full
    collection first clears the garbage made so far, so nothing collectable is frozen;
    later collections skip the frozen objects.
    """
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def in_background(task: Callable[[], T], name: str) -> Future[T]:
    """Run ``task`` in a thread of its own; the future holds its result (or its exception)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    future = pool.submit(task)
    pool.shutdown(wait=False)  # the thread ends after its one task; nothing waits for it here
    return future
