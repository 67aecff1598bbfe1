"""Send each hostile input to a throwaway redis-server beside good traffic, ingest it, and count where it went.

Prints the table of docs/reliability.md ("Ingestion under hostile input"): per attack,
the entries sent, the rows in bronze and in the quarantine, the entries recognised as a
resend of one already there, and the entries lost (sent minus the other three; must be 0).

    PYTHONPATH=. .venv/bin/python scripts/ingest_attacks.py [--good 1000] [--bad 200]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from looper_common.contracts import events  # noqa: E402
from looper_common.contracts.blueprint import load_blueprints  # noqa: E402
from looper_common.ingest.streams import ingest_events  # noqa: E402
from looper_common.lake.engine import Lake  # noqa: E402
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE  # noqa: E402

BP = load_blueprints(ROOT / "blueprints")["notification_send"]
STREAM = events.stream_key(BP.name)
FEATURES = {"days_since_last_visit": 2.5, "sessions_last_7d": 3, "push_opt_in": True, "country": "us",
            "platform": "ios"}
DEEP = "[" * 1_000 + "]" * 1_000
NOW = int(time.time() * 1000)


def _decision(i: int, **change: object) -> dict:
    return {
        "kind": "decision", "event_id": f"d{i}", "decision_id": f"d{i}", "blueprint": BP.name,
        "blueprint_version": BP.version, "unit_id": f"u{i}", "ts": NOW - 3_600_000,
        "features": dict(FEATURES), "action": "send", "propensity": 0.5, "action_probs": {"send": 0.5, "skip": 0.5},
        "is_default": False, **change,
    }


def _json(event: dict) -> bytes:
    return json.dumps(event).encode()


ATTACKS: dict[str, Callable[[int], bytes]] = {
    "lone surrogate in unit_id": lambda i: _json(_decision(i, unit_id="\ud800")),
    "lone surrogate in a category value": lambda i: _json(_decision(i, features={**FEATURES, "country": "\udfff"})),
    "lone surrogate in a feature name": lambda i: _json(_decision(i, features={**FEATURES, "\ud800": 1})),
    "invalid UTF-8 bytes": lambda i: b'{"kind": "decision", "event_id": "x%d", "unit_id": "\xff"}' % i,
    "1,000-level nested features": lambda i: _json(_decision(i, features={**FEATURES, "d": 0})).replace(
        b'"d": 0', b'"d": ' + DEEP.encode()),
    "payload over max_event_bytes": lambda i: _json(_decision(i, unit_id="x" * 70_000)),
    "random bytes": lambda i: bytes((i * 7 + k * 13) % 256 for k in range(40)),
    "non-string unit_id": lambda i: _json(_decision(i, unit_id=i)),
    "NaN feature": lambda i: _json(_decision(i, features={**FEATURES, "days_since_last_visit": float("nan")})),
    "Infinity propensity": lambda i: _json(_decision(i, propensity=float("inf"))),
    "NaN observation value": lambda i: _json({"kind": "observation", "event_id": f"o{i}", "decision_id": f"d{i}",
                                              "blueprint": BP.name, "name": "click", "value": float("nan"),
                                              "ts": NOW}),
    "ts = 1e20": lambda i: _json(_decision(i, ts=10**20)),
    "ts in year 10000": lambda i: _json(_decision(i, ts=253_402_300_800_000)),
    "ts in year -283229": lambda i: _json(_decision(i, ts=-9_000_000_000_000_000)),
    "ts 20 years before arrival": lambda i: _json(_decision(i, ts=NOW - 20 * 365 * 86_400_000)),
    "same event_id, other payload": lambda i: _json(_decision(i % 50, unit_id=f"other{i}")),
    "same event_id, same payload": lambda i: _json(_decision(i % 50)),
    "same event_id, other date": lambda i: _json(_decision(i % 50, ts=NOW - 3 * 86_400_000)),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis(workdir: str, *args: str) -> tuple[subprocess.Popen, redis.Redis]:
    port = _free_port()
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir, *args], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc, client
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def _count(lake: Lake) -> tuple[int, int]:
    bronze = sum(lake.read(s, columns=["event_id"]).table.num_rows for s in (BRONZE_DECISIONS, BRONZE_OBSERVATIONS))
    return bronze, lake.read(QUARANTINE, columns=["event_id"]).table.num_rows


def _full_redis(work: str) -> str:
    """Fill a 4 MB noeviction Redis until it refuses writes (the group exists from an earlier run), ingest it."""
    proc, client = _redis(work, "--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
    try:
        lake = Lake(f"{work}/lake-full")
        lake.ensure_tables()
        client.xadd(STREAM, {"e": _json(_decision(-1))})
        ingest_events(client, lake, {BP.name: BP}, streams=[STREAM])
        sent, refused = 0, False
        while not refused:
            pipe = client.pipeline(transaction=False)
            for i in range(sent, sent + 500):
                pipe.xadd(STREAM, {"e": _json(_decision(i))})
            results = pipe.execute(raise_on_error=False)
            failed = [r for r in results if isinstance(r, redis.ResponseError)]
            sent, refused = sent + len(results) - len(failed), bool(failed)
        stats = ingest_events(client, lake, {BP.name: BP}, streams=[STREAM], batch_size=2_000)
        bronze, quarantine = _count(lake)
        bronze -= 1  # the earlier run's event
        return (f"| Redis at maxmemory (4 MB, noeviction), group from an earlier run | {sent:,} | {bronze:,} | "
                f"{quarantine:,} | {stats.resent:,} | {sent - bronze - quarantine - stats.resent} |")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--good", type=int, default=1_000)
    parser.add_argument("--bad", type=int, default=200)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="looper-attacks-")
    proc, client = _redis(work, "--maxmemory-policy", "noeviction")
    print("| attack | entries in | bronze | quarantine | resent (same event) | lost |")
    print("|---|---|---|---|---|---|")
    try:
        for n, (name, make) in enumerate(ATTACKS.items()):
            lake = Lake(f"{work}/lake{n}")
            lake.ensure_tables()
            client.flushall()
            pipe = client.pipeline(transaction=False)
            for i in range(args.good):
                pipe.xadd(STREAM, {"e": _json(_decision(i))})
            for i in range(args.bad):
                pipe.xadd(STREAM, {"e": make(args.good + i) if "event_id" not in name else make(i)})
            pipe.execute()
            sent = args.good + args.bad
            stats = ingest_events(client, lake, {BP.name: BP}, streams=[STREAM], batch_size=400)
            bronze, quarantine = _count(lake)
            lost = sent - bronze - quarantine - stats.resent
            print(f"| {name} | {sent:,} | {bronze:,} | {quarantine:,} | {stats.resent:,} | {lost} |")
        print(_full_redis(work))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
