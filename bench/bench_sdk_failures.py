"""Benchmark ``LooperClient.get_decision`` while Redis is normal, hung, refusing writes and down.

One redis-server (the real binary) goes through four states in one run:

- normal: the policy is published, every lookup hits;
- hung: the server is paused with SIGSTOP (TCP connects, nothing answers);
- refusing writes: ``maxmemory`` reached under ``noeviction`` (reads still answer), with
  ``--buffered`` events (default 99,000) already waiting in the client;
- down: the server is stopped (connection refused).

Each state gets a fresh client with the default settings (0.5 s socket timeout,
back-off 1 s doubling to 30 s) and single ``get_decision`` calls for ``--calls`` calls
or ``--budget-s`` seconds, whichever comes first; p50/p99/max are over those calls.
With ``--baseline-ref`` the same scenarios also run on that commit's SDK (a
``git archive`` of it, in a subprocess) and the table shows both side by side.

    python bench/bench_sdk_failures.py --baseline-ref 6b80018      # before/after, docs section
    python bench/bench_sdk_failures.py --quick                     # a few seconds, this tree only
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence

import _common as C
import redis

from looper_common.contracts import events, policy_store
from looper_common.contracts.blueprint import load_blueprint
from looper_common.sdk.client import LooperClient

BLUEPRINT = "notification_send"
FEATURES = {"days_since_last_visit": 3.5, "sessions_last_7d": 2, "push_opt_in": True, "country": "us",
            "platform": "ios"}
UNITS = 1_000
SCENARIOS = ("normal", "hung", "refusing writes", "down")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(port: int, workdir: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--maxmemory-policy", "noeviction"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        with contextlib.suppress(redis.ConnectionError):
            client.ping()
            return proc
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def _publish(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(UNITS):
        pipe.set(policy_store.entry_key(BLUEPRINT, "v1", f"user_{i}"),
                 policy_store.encode_entry("send", {"send": 0.7, "skip": 0.3}))
    pipe.set(policy_store.active_key(BLUEPRINT), "v1")
    pipe.execute()


def _measure(sdk: LooperClient, calls: int, budget_s: float, pace_s: float = 0.0) -> dict[str, object]:
    """Single calls, ``pace_s`` apart, until ``calls`` or ``budget_s``; latencies in ms and what was served."""
    lat, reasons = [], Counter()
    clock = time.perf_counter
    end = clock() + budget_s
    i = 0
    while i < calls and (i < 5 or clock() < end):
        t0 = clock()
        d = sdk.get_decision(BLUEPRINT, f"user_{i % UNITS}", FEATURES)
        lat.append((clock() - t0) * 1e3)
        if pace_s:
            time.sleep(pace_s)
        reasons[getattr(d, "default_reason", None) or ("served" if not d.is_default else "default")] += 1
        i += 1
    return {
        "calls": len(lat), "p50": C.percentile(lat, 50), "p99": C.percentile(lat, 99), "max": max(lat),
        "slow": sum(x > 100 for x in lat), "span_s": clock() - end + budget_s, "served": dict(reasons),
    }


def _client(url: str, blueprint) -> LooperClient:
    kwargs = {}
    if "close_timeout_s" in inspect.signature(LooperClient).parameters:
        kwargs["close_timeout_s"] = 0.0  # the benchmark ends with Redis away: do not wait at exit
    return LooperClient(url, blueprints={BLUEPRINT: blueprint}, pointer_ttl_s=1.0, **kwargs)


def run_scenarios(calls: int, budget_s: float, buffered: int, pace_s: float) -> dict[str, dict[str, object]]:
    """The four states, in order, against one redis-server."""
    blueprint = load_blueprint(C.ROOT / "blueprints" / f"{BLUEPRINT}.yaml")
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    workdir = tempfile.mkdtemp(prefix="looper-bench-failures-")
    proc = _start_server(port, workdir)
    admin = redis.Redis(port=port)
    out: dict[str, dict[str, object]] = {}
    try:
        _publish(admin)
        sdk = _client(url, blueprint)
        _measure(sdk, 200, budget_s)  # warm-up
        out["normal"] = _measure(sdk, calls, budget_s)

        sdk = _client(url, blueprint)
        sdk.get_decision(BLUEPRINT, "user_1", FEATURES)  # connected, pointer cached
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            out["hung"] = _measure(sdk, calls, budget_s, pace_s)
        finally:
            os.kill(proc.pid, signal.SIGCONT)

        admin.delete(events.stream_key(BLUEPRINT))
        sdk = _client(url, blueprint)
        sdk.get_decision(BLUEPRINT, "user_1", FEATURES)
        admin.config_set("maxmemory", 1)  # every write refused from now on
        started = time.perf_counter()
        for b in range(buffered // 1_000):
            sdk.get_decisions(BLUEPRINT, [(f"user_{(b + j) % UNITS}", FEATURES) for j in range(1_000)])
        fill_s = time.perf_counter() - started
        out["refusing writes"] = _measure(sdk, calls, budget_s, pace_s)
        out["refusing writes"]["fill_s"] = fill_s
        admin.config_set("maxmemory", 0)

        sdk = _client(url, blueprint)
        sdk.get_decision(BLUEPRINT, "user_1", FEATURES)
        proc.terminate()
        proc.wait(10)
        out["down"] = _measure(sdk, calls, budget_s, pace_s)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(10)
    return out


def run_baseline(ref: str, argv: Sequence[str]) -> dict[str, dict[str, object]]:
    """The same scenarios on ``ref``'s SDK: this script, in a subprocess, over a ``git archive`` of it."""
    with C.temp_dir("looper-bench-baseline-") as tree:
        archive = subprocess.run(["git", "-C", str(C.ROOT), "archive", ref], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        env = {**os.environ, "PYTHONPATH": str(tree), "LOOPER_HOME": str(C.ROOT)}
        result = subprocess.run([sys.executable, __file__, "--json", *argv], env=env, check=True,
                                capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _cell(m: dict[str, object], key: str) -> str:
    value = float(m[key])  # type: ignore[arg-type]
    return f"{value:.3f}" if value < 10 else f"{value:,.0f}"


def report(results: dict[str, dict[str, dict[str, object]]], buffered: int, pace_ms: float) -> str:
    labels = list(results)
    rows = []
    for scenario in SCENARIOS:
        for label in labels:
            m = results[label][scenario]
            served = ", ".join(f"{k} {v:,}" for k, v in sorted(m["served"].items()))  # type: ignore[union-attr]
            rows.append([scenario, label, f"{m['calls']:,} in {m['span_s']:.1f} s", _cell(m, "p50"), _cell(m, "p99"),
                         _cell(m, "max"), f"{m['slow']:,}", served])
    text = C.table(["Redis", "SDK", "calls", "p50 ms", "p99 ms", "max ms", "calls > 100 ms", "what was served"], rows)
    fills = ", ".join(f"{label} {results[label]['refusing writes']['fill_s']:.1f} s" for label in labels)
    return (
        f"{text}\n\nRefusing writes: the client already holds {buffered:,} unsent events "
        f"(buffered by {buffered // 1_000:,} `get_decisions` calls of 1,000 under OOM, which took: {fills}). "
        "Each state starts a fresh client (default settings: 0.5 s socket timeout, back-off 1 s doubling "
        "to 30 s); calls stop at the call count or the time budget, whichever comes first. In the three failure "
        f"states the calls are {pace_ms:g} ms apart, like steady traffic, so the run spans several back-off "
        "periods: `calls > 100 ms` counts the calls that waited on a socket timeout."
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    p.add_argument("--calls", type=int, help="calls per state (default 2,000; quick 200)")
    p.add_argument("--budget-s", type=float, help="seconds per state at most (default 20; quick 3)")
    p.add_argument("--buffered", type=int, help="events waiting when writes are refused (default 99,000)")
    p.add_argument("--pace-ms", type=float, default=5.0, help="pause between calls in the failure states (5)")
    p.add_argument("--baseline-ref", help="also run the SDK of this git commit, side by side")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    C.add_docs_option(p)
    args = p.parse_args(argv)
    calls = args.calls or (200 if args.quick else 2_000)
    budget = args.budget_s or (3.0 if args.quick else 20.0)
    buffered = args.buffered if args.buffered is not None else (5_000 if args.quick else 99_000)
    own = ["--calls", str(calls), "--budget-s", str(budget), "--buffered", str(buffered),
           "--pace-ms", str(args.pace_ms)]
    if args.json:
        print(json.dumps(run_scenarios(calls, budget, buffered, args.pace_ms / 1e3)))
        return 0
    results: dict[str, dict[str, dict[str, object]]] = {}
    if args.baseline_ref:
        results[f"`{args.baseline_ref}` (before)"] = run_baseline(args.baseline_ref, own)
    results["this tree"] = run_scenarios(calls, budget, buffered, args.pace_ms / 1e3)
    body = report(results, buffered, args.pace_ms)
    print(body)
    if C.docs_wanted(args):
        C.write_section("sdk_failures", "SDK `get_decision` with Redis normal, hung, refusing writes, down", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
