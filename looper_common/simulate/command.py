"""``looper simulate``: its arguments and run; the work is done by :mod:`.simulator`."""

from __future__ import annotations

import argparse
import random
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

DESCRIPTION = """\
Send synthetic traffic for one blueprint through the real SDK, one UTC day at a time.

Each simulated user gets decisions at random times of the day (get_decisions, in
batches); outcomes are drawn from the scenario's hidden response model for the
action actually served, and observations are sent when their (delayed) time has
come: those due after a day's end wait for a later day, and the rest are flushed
at the end unless --no-flush. The same --seed gives the same users, decision ids,
actions and outcomes, given the same published policy.

Per day it prints the true expected objective per decision of the policy served
(exploration included), of always serving the default action, and of the oracle
(always the best action), and writes the oracle table (expected objective of every
action per decision) to <oracle-dir>/<blueprint>/date=YYYY-MM-DD.parquet.

example:
  looper simulate --blueprint notification_send --days 7 --users 2000 --seed 7 \\
      --start-date 2026-01-01
"""

_HEADER = f"{'date':<10}  {'decisions':>9}  {'observations':>12}  {'policy':>6}  " \
          f"{'served':>7}  {'default':>7}  {'oracle':>7}"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return value


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-01-31") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``looper simulate``."""
    parser.add_argument("--blueprint", required=True, help="blueprint name, e.g. notification_send")
    parser.add_argument("--days", type=_positive_int, default=7,
                        help="days to simulate (default 7)")
    parser.add_argument("--users", type=_positive_int, default=2000,
                        help="synthetic users (default 2000)")
    parser.add_argument("--seed", type=_non_negative_int, default=7,
                        help="seed of every random draw, decision ids included (default 7)")
    parser.add_argument("--start-date", type=_iso_date, default=None,
                        help="UTC date of the first day, YYYY-MM-DD "
                             "(default: so that the last simulated day is yesterday)")
    parser.add_argument("--env", default=None,
                        help="settings environment (conf/<env>.yaml); default $LOOPER_ENV or local")
    parser.add_argument("--redis-url", default=None,
                        help="Redis to use (default: from the settings)")
    parser.add_argument("--blueprints-dir", default=None,
                        help="folder of blueprint YAML files (default: from the settings)")
    parser.add_argument("--oracle-dir", default=None,
                        help="where oracle tables go (default: <home>/var/sim)")
    parser.add_argument("--no-flush", action="store_true",
                        help="leave observations due after the last day unsent")
    add_arrival_arguments(parser)


def _duration(text: str) -> timedelta:
    from looper_common.contracts.blueprint import parse_duration

    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _outage(text: str) -> tuple[datetime, datetime]:
    try:
        start, end = (datetime.fromisoformat(part).replace(tzinfo=UTC) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not START/END like 2026-01-02T06:00/2026-01-03T06:00") from None
    if not start < end:
        raise argparse.ArgumentTypeError(f"outage {text!r} must end after it starts")
    return start, end


def add_arrival_arguments(parser: argparse.ArgumentParser) -> None:
    """When observations reach Redis (late feedback, ``simulate/arrival.py``)."""
    parser.add_argument("--arrival-lag", type=_duration, default=None,
                        help="send each observation only this long after its event time (e.g. 3h)")
    parser.add_argument("--outage", type=_outage, default=None,
                        help="UTC START/END during which no observation is sent; held ones go after it")


def _fail(message: str, code: int = 2) -> int:
    print(f"looper simulate: error: {message}", file=sys.stderr)
    return code


def _row(stats) -> str:
    return (f"{stats.date.isoformat():<10}  {stats.decisions:>9}  {stats.observations_sent:>12}  "
            f"{stats.policy_share:>6.1%}  {stats.served_value:>7.4f}  {stats.default_value:>7.4f}  "
            f"{stats.oracle_value:>7.4f}")


def run(args: argparse.Namespace) -> int:
    """Simulate ``args.days`` days and print one row per day; 2 on a usage error."""
    import redis

    from looper_common.contracts.blueprint import BlueprintError, load_blueprints
    from looper_common.contracts.config import ConfigError, load_settings
    from looper_common.sdk.client import LooperClient, LooperError
    from looper_common.sdk.connection import mask_url
    from looper_common.simulate.arrival import Arrival
    from looper_common.simulate.base import ScenarioError
    from looper_common.simulate.simulator import Simulator

    try:
        settings = load_settings(args.env)
        blueprints = load_blueprints(args.blueprints_dir or settings.blueprints_dir)
    except (ConfigError, BlueprintError) as err:
        return _fail(str(err))
    if args.blueprint in blueprints.invalid:
        return _fail(blueprints.invalid[args.blueprint])
    if args.blueprint not in blueprints:
        known = ", ".join(sorted(blueprints)) or "none"
        return _fail(f"unknown blueprint {args.blueprint!r} (known: {known})")
    start = args.start_date or datetime.now(UTC).date() - timedelta(days=args.days)
    oracle_dir = Path(args.oracle_dir or Path(settings.home) / "var" / "sim")
    url = args.redis_url or settings.redis.url
    try:
        client = LooperClient(url, blueprints=blueprints, password=settings.redis.password,
                              cluster=settings.redis.cluster, socket_timeout=10.0, limits=settings.ingest.limits,
                              random_bits=random.Random(args.seed).getrandbits)
        simulator = Simulator(client, blueprints[args.blueprint], users=args.users, seed=args.seed,
                              start=start, oracle_dir=oracle_dir,
                              arrival=Arrival(lag=args.arrival_lag or timedelta(0), outage=args.outage))
        client.redis.ping()
    except (ScenarioError, LooperError) as err:
        return _fail(str(err))
    except redis.RedisError as err:
        return _fail(f"cannot reach Redis at {mask_url(url)}: {err}", code=1)

    print(f"{args.blueprint}: {args.users} users, seed {args.seed}, "
          f"{args.days} day(s) from {start}")
    print(_HEADER)
    for day in range(args.days):
        print(_row(simulator.run_day(day)), flush=True)
    if not args.no_flush:
        print(f"flushed {simulator.flush_all()} observation(s) due after the last day")
    else:
        print(f"left {simulator.pending} observation(s) unsent (--no-flush)")
    print(f"oracle tables: {oracle_dir / args.blueprint}")
    unsent = client.flush()
    if unsent or client.dropped_events:
        return _fail(f"{unsent} event(s) could not be sent to Redis "
                     f"({client.dropped_events} dropped)", code=1)
    return 0
