"""Send decisions and observations through the SDK while Redis fails, recover, ingest, and count where each went.

Prints the table of docs/reliability.md ("SDK under Redis failure", counts): per
failure, the events product code handed the SDK (``--decisions`` ``get_decision``
calls and an observation for every other one), the rows in bronze and in the
quarantine after ``ingest_events``, the events the SDK kept while Redis failed and
sent after it recovered ("late"), the events it gave up and counted
(``events_dropped``, logged), and the events lost: in − bronze − quarantine − counted.

Each failure runs on a fresh redis-server (``noeviction``, append-only, so a restart keeps
the stream and the group) and a fresh lake. In-process: Redis hung (SIGSTOP), refusing
writes (``maxmemory`` below what it holds), down (stopped, then restarted on its port);
then ``close()`` once it is back. In a child process with Redis down while it sends:
exit with Redis back (the at-exit flush), ``close()`` with Redis back, exit with Redis
still down (the flush gives up, counted), and SIGKILL (nothing can run).

    PYTHONPATH=. nice -n 19 .venv/bin/python scripts/sdk_outage_counts.py [--decisions 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest_attacks import BP, STREAM, _count, _free_port  # noqa: E402  (scripts/ is not a package)

from looper_common.ingest.streams import ingest_events  # noqa: E402
from looper_common.lake.engine import Lake  # noqa: E402
from looper_common.sdk.client import LooperClient  # noqa: E402

FEATURES = {"days_since_last_visit": 2.5, "sessions_last_7d": 3, "push_opt_in": True, "country": "us",
            "platform": "ios"}

# The child: a product process that sends while Redis is down, then exits as the parent says.
CHILD = """
import json, logging, sys
from looper_common.contracts.blueprint import load_blueprints
from looper_common.sdk.client import LooperClient
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
url, n, ending = sys.argv[1], int(sys.argv[2]), sys.argv[3]
bp = load_blueprints(sys.argv[4])["notification_send"]
client = LooperClient(url, blueprints={bp.name: bp}, close_timeout_s=2.0)
features = json.loads(sys.argv[5])
for i in range(n):
    d = client.get_decision(bp.name, f"u{i}", features)
    if i % 2 == 0:
        client.log_observations(d.decision_id, {"click": 1})
print(json.dumps({"kept": client.stats()["events_buffered"]}), flush=True)
sys.stdin.readline()  # the parent has set Redis as the ending needs
if ending == "close":
    print(json.dumps({"given_up": client.close(timeout_s=10.0)}), flush=True)
"""


def _traffic(client: LooperClient, n: int) -> int:
    """``n`` single decisions and an observation for every other one; returns the events handed over."""
    for i in range(n):
        d = client.get_decision(BP.name, f"u{i}", FEATURES)
        if i % 2 == 0:
            client.log_observations(d.decision_id, {"click": 1})
    return n + (n + 1) // 2


class Server:
    """One redis-server on a fixed port and folder, which can be stopped and started again."""

    def __init__(self, work: str) -> None:
        self.port, self.work = _free_port(), work
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--dir", self.work],
            stdout=subprocess.DEVNULL,
        )
        self.admin = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                self.admin.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _row(name: str, server: Server, lake: Lake, sent: int, late: int, counted: int) -> str:
    ingest_events(server.admin, lake, {BP.name: BP}, streams=[STREAM])
    bronze, quarantine = _count(lake)
    lost = sent - bronze - quarantine - counted
    return f"| {name} | {sent:,} | {bronze:,} | {quarantine:,} | {late:,} | {counted:,} | {lost:,} |"


def in_process(name: str, fail: Callable[[Server], None], recover: Callable[[Server], None], n: int,
               work: str) -> str:
    """A client made while Redis is up; Redis fails, the traffic is sent, Redis recovers, the client closes."""
    server = Server(work)
    lake = Lake(f"{work}/lake")
    lake.ensure_tables()
    try:
        ingest_events(server.admin, lake, {BP.name: BP}, streams=[STREAM])  # an earlier run: the group exists
        client = LooperClient(server.url, blueprints={BP.name: BP})
        fail(server)
        sent = _traffic(client, n)
        late = client.stats()["events_buffered"]
        recover(server)
        counted = client.close(timeout_s=60.0)
        return _row(name, server, lake, sent, late, counted)
    finally:
        server.stop()


def in_child(name: str, ending: str, n: int, work: str) -> str:
    """A child process sends while Redis is down, then ends as ``ending`` says."""
    server = Server(work)
    lake = Lake(f"{work}/lake")
    lake.ensure_tables()
    try:
        ingest_events(server.admin, lake, {BP.name: BP}, streams=[STREAM])
        server.stop()
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, server.url, str(n), ending, str(ROOT / "blueprints"), json.dumps(FEATURES)],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        late = json.loads(child.stdout.readline())["kept"]
        sent = n + (n + 1) // 2
        if ending == "kill":
            child.send_signal(signal.SIGKILL)
        else:
            if ending != "exit while down":
                server.start()
            child.stdin.write("go\n")
            child.stdin.flush()
        out, err = child.communicate(timeout=120)
        given_up = re.findall(r"(\d+) event\(s\) were never sent to Redis", err)
        counted = sum(map(int, given_up))
        if ending in ("exit while down", "kill"):
            server.start()
            late = 0  # kept, never sent
        return _row(name, server, lake, sent, late, counted)
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=2_000, help="get_decision calls per failure")
    n = parser.parse_args().decisions

    def refuse(s: Server) -> None:
        s.admin.config_set("maxmemory", 1)  # below what it holds: every write refused (OOM), reads answer

    def accept(s: Server) -> None:
        s.admin.config_set("maxmemory", 0)

    cases = [
        ("normal", lambda s: None, lambda s: None),
        ("hung (SIGSTOP), then SIGCONT", lambda s: s.proc.send_signal(signal.SIGSTOP),
         lambda s: s.proc.send_signal(signal.SIGCONT)),
        ("refusing writes (maxmemory, noeviction), then maxmemory raised", refuse, accept),
        ("down (stopped), then restarted", Server.stop, Server.start),
    ]
    endings = [
        ("process exit, Redis back before it (at-exit flush)", "exit"),
        ("`close()`, Redis back before it", "close"),
        ("process exit, Redis still down (flush gives up after 2 s)", "exit while down"),
        ("process killed (SIGKILL), events kept in memory", "kill"),
    ]
    load = os.getloadavg()[0]
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load:.1f}, {n:,} decisions per row")
    print("| Redis | events in | bronze | quarantine | late (kept, sent after recovery) | counted unsent | lost |")
    print("|---|---|---|---|---|---|---|")
    for name, fail, recover in cases:
        with tempfile.TemporaryDirectory(prefix="looper-outage-") as work:
            print(in_process(name, fail, recover, n, work), flush=True)
    for name, ending in endings:
        with tempfile.TemporaryDirectory(prefix="looper-outage-") as work:
            print(in_child(name, ending, n, work), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
