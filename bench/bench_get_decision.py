"""Benchmark ``LooperClient.get_decision`` / ``get_decisions`` against raw redis-py round trips.

A decision costs one GET (the unit's published entry) and one XADD (the decision
event). The baseline makes exactly those round trips with redis-py and a pre-encoded
payload of the same size (a real SDK event), so SDK/raw is the SDK's own overhead.
The SDK's own transport (MGET and the client's ``_send`` of prebuilt events, no
decision work) is the floor of the batch path: ``get_decisions`` in 1,000-decision
batches (epsilon-greedy, ``serving.mode: lookup``, so no online scoring) is to make at
least 0.6x its rate, printed beside it. The loops rotate over several rounds after a
warm-up, against the same Redis, so that load from other work on the machine hits
every side alike. A diagnostic loop times the per-decision steps alone (no Redis); a
cProfile pass and a timing of each step show where the rest goes.

    python bench/bench_get_decision.py            # 20,000 calls, 100 batches of 1,000 per loop
    python bench/bench_get_decision.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import bisect
import cProfile
import hashlib
import io
import pstats
import time
import timeit
from collections import defaultdict
from collections.abc import Callable, Sequence

import _common as C
import redis
import yaml

from looper_common.contracts import events, ids, policy_store
from looper_common.contracts.blueprint import Blueprint, parse_blueprint
from looper_common.sdk import decision_batch as DB
from looper_common.sdk import exploration
from looper_common.sdk.client import LooperClient
from looper_common.sdk.holdback import withhold
from looper_common.sdk.requests import check_requests

BLUEPRINT = "notification_send"
VERSION = "v1"
FEATURES = {
    "days_since_last_visit": 3.5,
    "sessions_last_7d": 2,
    "push_opt_in": True,
    "country": "us",
    "platform": "ios",
}
RAW_STREAM = events.stream_key("raw_baseline")
TARGET_OVERHEAD = 1.5  # SDK time per decision / raw round trips
TARGET_P99_MS = 2.0
TARGET_BATCH_PER_S = 50_000
TARGET_OF_TRANSPORT = 0.6  # get_decisions' rate / the SDK's packed transport's rate, batches of 1,000

Result = tuple[list[int], float]  # per-call latencies (ns; empty for batches), seconds


def publish(client: redis.Redis, units: Sequence[str]) -> None:
    """Publish one policy version with an entry per unit, then point ``active`` at it."""
    pipe = client.pipeline(transaction=False)
    for i, unit in enumerate(units):
        score = (i % 100) / 100
        entry = policy_store.encode_entry("send" if score >= 0.5 else "skip", {"send": score, "skip": 1 - score})
        pipe.set(policy_store.entry_key(BLUEPRINT, VERSION, unit), entry)
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.set(policy_store.active_key(BLUEPRINT), VERSION)
    pipe.execute()


# -- measured loops ----------------------------------------------------------------------


def timed_calls(call: Callable[[int], object], n: int) -> Result:
    """Run ``call(i)`` for i < n, timing each call."""
    clock = time.perf_counter_ns
    lat = [0] * n
    start = clock()
    for i in range(n):
        t0 = clock()
        call(i)
        lat[i] = clock() - t0
    return lat, (clock() - start) / 1e9


def timed_batches(call: Callable[[int], object], n: int) -> Result:
    start = time.perf_counter()
    for i in range(n):
        call(i)
    return [], time.perf_counter() - start


def single_loops(sdk: LooperClient, r: redis.Redis, units: list[str], keys: list[str], payload: bytes):
    """Single decisions: SDK, raw GET + XADD, and the SDK's transport alone (no decision work)."""
    fields, k = {events.PAYLOAD_FIELD: payload}, len(units)
    sdk_stream = events.stream_key(BLUEPRINT)

    def sdk_call(i: int) -> None:
        sdk.get_decision(BLUEPRINT, units[i % k], FEATURES)

    def raw_call(i: int) -> None:
        if r.get(keys[i % k]) is None:
            raise RuntimeError("raw GET missed: the policy is not published")
        r.xadd(RAW_STREAM, fields)

    def sdk_transport(i: int) -> None:
        # What get_decision sends and receives, through the client's own calls.
        sdk.redis.mget([keys[i % k]])
        sdk._send(sdk_stream, [payload])

    return sdk_call, raw_call, sdk_transport


def batch_loops(
    sdk: LooperClient,
    r: redis.Redis,
    request_batches: list[list],
    key_batches: list[list],
    payload: bytes,
):
    fields = {events.PAYLOAD_FIELD: payload}
    sdk_stream = events.stream_key(BLUEPRINT)

    def sdk_batch(i: int) -> None:
        sdk.get_decisions(BLUEPRINT, request_batches[i % len(request_batches)])

    def raw_batch(i: int) -> None:
        keys = key_batches[i % len(key_batches)]
        r.mget(keys)
        pipe = r.pipeline(transaction=False)
        for _ in keys:
            pipe.xadd(RAW_STREAM, fields)
        pipe.execute()

    def sdk_transport(i: int) -> None:
        keys = key_batches[i % len(key_batches)]
        sdk.redis.mget(keys)
        sdk._send(sdk_stream, [payload] * len(keys))

    return sdk_batch, raw_batch, sdk_transport


def sdk_work_only(
    sdk: LooperClient,
    blueprint: Blueprint,
    request_batches: list[list],
    entry_batches: list[list[bytes]],
) -> Callable[[int], None]:
    """The per-decision steps of ``get_decisions`` on prefetched entries, without Redis.

    The same calls as client.py (feature checks, the holdback, then the serving plan's
    ``decide``), so that SDK - transport - this is what the batch method itself adds.
    """
    compiled = sdk._compiled(BLUEPRINT)
    plan = sdk._plan(compiled, VERSION, blueprint.policy.exploration)

    def work(i: int) -> None:
        requests, entries = (
            request_batches[i % len(request_batches)],
            entry_batches[i % len(entry_batches)],
        )
        check_requests(compiled, requests)
        plan.decide(requests, [events.to_epoch_ms(None)] * len(requests), withhold(blueprint, requests, entries))

    return work


def rotate(rounds: int, runs: Sequence[Callable[[], Result]], reset: Callable[[], None]) -> list[list[Result]]:
    """Run each of ``runs`` once per round, rotating which goes first; results per run."""
    out: list[list[Result]] = [[] for _ in runs]
    for r in range(rounds):
        for j in range(len(runs)):
            idx = (j + r) % len(runs)
            out[idx].append(runs[idx]())
            reset()
    return out


# -- where the time goes -------------------------------------------------------------------


def step_costs(sdk: LooperClient, blueprint: Blueprint, entry: bytes) -> list[tuple[str, float]]:
    """CPU cost (µs, best of 5, no network) of each per-decision step of ``get_decisions``.

    Each step as the loop in ``decision_batch.ServingPlan.decide`` does it, one at a time.
    """
    compiled = sdk._compiled(BLUEPRINT)
    plan = sdk._plan(compiled, VERSION, blueprint.policy.exploration)
    ts = events.to_epoch_ms(None)
    requests = [("user_1", FEATURES)] * 1_000
    check_requests(compiled, requests[:1])
    stamps = [ts] * 1_000
    greedy, scores = DB.decode_entry(entry)
    dist = plan._served.get(greedy) or plan._distribution(greedy, scores)
    did = ids.new_decision_id(compiled.tag, ts)
    did_b = did.encode()
    u = exploration.uniform_from_id(did)
    action = dist.drawable[0]
    propensity, fragment = dist.probs[action], dist.fragments.get(action) or dist.fragment(action)
    features_json, scores_json, unit_json = DB.encode_json(FEATURES), DB.encode_json(scores), b'"user_1"'
    template = plan._served_event
    entries = [entry] * 1_000
    empty_blake2b_8 = hashlib.blake2b(digest_size=8)

    def draw(id_bytes: bytes) -> float:  # as decide does it; equals exploration.uniform_from_id
        h = empty_blake2b_8.copy()
        h.update(id_bytes)
        return int.from_bytes(h.digest(), "big") / 2.0**64
    steps: list[tuple[str, Callable[[], object], int]] = [
        ("feature checks (signature known)", lambda: check_requests(compiled, requests), 1_000),
        ("`ids.new_decision_ids` (one os.urandom per batch)",
         lambda: ids.new_decision_ids(compiled.tag, stamps), 1_000),
        ("entry decode (msgspec)", lambda: DB.decode_entry(entry), 1),
        ("distribution (cached per greedy action)", lambda: plan._served.get(greedy), 1),
        ("holdback draw (blake2b of the unit id)", lambda: withhold(blueprint, requests, entries), 1_000),
        ("uniform draw from the id (blake2b, from a copied empty state)", lambda: draw(did_b), 1),
        ("pick the action (bisect on cumulative sums), its event fragment", lambda: (
            bisect.bisect_right(dist.cumulative, u), dist.probs[action], dist.fragments.get(action)), 1),
        ("`Decision` and its own `action_probs` copy", lambda: DB.Decision(
            did, BLUEPRINT, "user_1", action, propensity, dist.probs.copy(), scores, VERSION, False, ts, None), 1),
        ("features and scores JSON (msgspec)", lambda: (DB.encode_json(FEATURES), DB.encode_json(scores)), 1),
        ("event JSON (one bytes template)", lambda: template % (
            did_b, did_b, unit_json, ts, features_json, fragment, scores_json), 1),
    ]
    costs = []
    for name, fn, per_call in steps:  # per_call: decisions one call covers
        number = max(5, 5_000 // per_call)
        costs.append((name, min(timeit.repeat(fn, number=number, repeat=5)) / number / per_call * 1e6))
    return costs


def _bucket(filename: str, func: str) -> str:
    if any(s in func for s in ("recv", "sendall", "select", "poll")):
        return "socket send/recv (waiting on Redis)"
    for marker, name in (
        ("/redis/", "redis-py (commands, pipeline, pool, parsing)"),
        ("msgspec", "msgspec encode/decode"),
        ("json", "json encode/decode"),
        ("looper_common/contracts/ids.py", "ids.py"),
        ("looper_common/sdk/decision_batch.py", "decision_batch.py (the batch loop)"),
        ("looper_common/sdk/redis_batches.py", "redis_batches.py (script calls)"),
        ("looper_common/sdk/exploration.py", "exploration.py"),
        ("looper_common/contracts/events.py", "events.py (timestamps)"),
        ("looper_common/sdk/client.py", "client.py itself"),
        ("looper_common/contracts/policy_store.py", "policy_store.py"),
    ):
        if marker in filename or marker in func:
            return name
    if any(s in func for s in ("blake2b", "urandom", "digest", "from_bytes")):
        return "hashing / randomness"
    return "other (builtins, dataclass init, ...)"


def profile(fn: Callable[[], object], top: int) -> tuple[str, dict[str, float]]:
    """cProfile ``fn``: the top functions by own time, and own-time shares by component."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    groups: dict[str, float] = defaultdict(float)
    for (filename, _, func), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        groups[_bucket(filename, func)] += tottime
    stats.sort_stats("tottime").print_stats(top)
    total = sum(groups.values()) or 1.0
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    head = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    return "\n".join(lines[head : head + top + 1]), {g: t / total for g, t in groups.items()}


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    p.add_argument("-n", "--calls", type=int, help="sequential calls per loop (default 20,000; quick 4,000)")
    p.add_argument("--batch-size", type=int, default=1_000, help="requests per get_decisions call")
    p.add_argument("--batches", type=int, help="batches per loop (default 100; quick 20)")
    p.add_argument("--rounds", type=int, default=10, help="rounds the sizes are split over (order rotates)")
    p.add_argument("--units", type=int, default=50_000, help="units with a published entry")
    p.add_argument("--redis-url", help="an empty Redis database (default: a throwaway redis-server)")
    p.add_argument("--profile-top", type=int, default=12, help="functions listed from the SDK profile")
    C.add_docs_option(p)
    args = p.parse_args(argv)
    args.calls = args.calls or (4_000 if args.quick else 20_000)
    args.batches = args.batches or (20 if args.quick else 100)
    args.docs = C.docs_wanted(args)
    return args


def _latency(runs: list[Result]) -> dict[str, float]:
    lat = [x for lats, _ in runs for x in lats]
    return {
        "n": len(lat),
        "p50": C.percentile(lat, 50) / 1e6,
        "p99": C.percentile(lat, 99) / 1e6,
        "max": max(lat) / 1e6,
        "rate": C.median([len(lats) / sec for lats, sec in runs]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # online scoring off: the shipped blueprint serves hybrid; the packed-transport goal is the lookup path's
    shipped = yaml.safe_load((C.ROOT / "blueprints" / f"{BLUEPRINT}.yaml").read_text())
    blueprint = parse_blueprint({**shipped, "serving": {"mode": "lookup"}}, f"{BLUEPRINT} (lookup)")
    units = [f"user_{i}" for i in range(args.units)]
    keys = [policy_store.entry_key(BLUEPRINT, VERSION, u) for u in units]
    calls_per_round, batches_per_round = (
        args.calls // args.rounds,
        max(1, args.batches // args.rounds),
    )
    request_batches = [
        [(units[(b * args.batch_size + j) % len(units)], FEATURES) for j in range(args.batch_size)] for b in range(20)
    ]
    key_batches = [[policy_store.entry_key(BLUEPRINT, VERSION, u) for u, _ in batch] for batch in request_batches]

    with C.redis_server(args.redis_url) as url:
        r = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        publish(r, units)
        sdk = LooperClient(url, blueprints={BLUEPRINT: blueprint})
        probe = sdk.get_decision(BLUEPRINT, units[1], FEATURES)
        if probe.is_default or probe.policy_version != VERSION:
            raise SystemExit("the SDK served the default: the policy lookup did not hit")
        payload = DB.encode_decision_event(blueprint, probe, FEATURES)  # both sides move the same bytes

        def reset() -> None:
            r.delete(events.stream_key(BLUEPRINT), RAW_STREAM)

        sdk_call, raw_call, sdk_io = single_loops(sdk, r, units, keys, payload)
        sdk_batch, raw_batch, sdk_batch_io = batch_loops(sdk, r, request_batches, key_batches, payload)
        work_only = sdk_work_only(sdk, blueprint, request_batches, [r.mget(k) for k in key_batches])
        for call in (sdk_call, raw_call, sdk_io):  # warm-up: connections, pointer cache
            timed_calls(call, 2_000)
        for call in (sdk_batch, raw_batch, sdk_batch_io, work_only):
            timed_batches(call, 3)
        reset()
        single = rotate(
            args.rounds,
            [
                lambda: timed_calls(sdk_call, calls_per_round),
                lambda: timed_calls(raw_call, calls_per_round),
                lambda: timed_calls(sdk_io, calls_per_round),
            ],
            reset,
        )
        batch = rotate(
            args.rounds,
            [
                lambda: timed_batches(sdk_batch, batches_per_round),
                lambda: timed_batches(raw_batch, batches_per_round),
                lambda: timed_batches(sdk_batch_io, batches_per_round),
                lambda: timed_batches(work_only, batches_per_round),
            ],
            reset,
        )
        steps = step_costs(sdk, blueprint, r.get(keys[1]))
        top_single, shares_single = profile(
            lambda: timed_calls(sdk_call, min(calls_per_round, 5_000)), args.profile_top
        )
        top_batch, shares_batch = profile(lambda: timed_batches(sdk_batch, 10), args.profile_top)
        reset()

    s, w, x = (_latency(runs) for runs in single)
    per_round = batches_per_round * args.batch_size
    sb, rb, tb, wb = (C.median([per_round / sec for _, sec in runs]) for runs in batch)
    p50_ratio, rate_ratio = s["p50"] / w["p50"], w["rate"] / s["rate"]

    def row(name: str, m: dict[str, float]) -> list[str]:
        return [
            name,
            f"{m['n']:,}",
            f"{m['p50']:.3f}",
            f"{m['p99']:.3f}",
            f"{m['max']:.2f}",
            f"{m['rate']:,.0f}",
            f"{m['p50'] / w['p50']:.2f}x",
            f"{w['rate'] / m['rate']:.2f}x",
        ]

    single_table = C.table(
        [
            "loop",
            "calls",
            "p50 ms",
            "p99 ms",
            "max ms",
            "calls/s",
            "p50 / raw",
            "time per call / raw",
        ],
        [
            row("SDK `get_decision`", s),
            row("**raw** GET + XADD (baseline)", w),
            row("SDK transport alone: MGET + `_send` of a prebuilt event (diagnostic)", x),
        ],
    )
    batch_table = C.table(
        ["loop", "decisions", "decisions/s", "µs per decision", "time / raw", "rate / SDK transport"],
        [
            [
                f"SDK `get_decisions` ({args.batch_size:,} per call)",
                f"{per_round * args.rounds:,}",
                f"{sb:,.0f}",
                f"{1e6 / sb:.1f}",
                f"{rb / sb:.2f}x",
                f"{sb / tb:.2f}x",
            ],
            [
                "**raw** MGET + pipelined XADDs (baseline)",
                f"{per_round * args.rounds:,}",
                f"{rb:,.0f}",
                f"{1e6 / rb:.1f}",
                "1.00x",
                f"{rb / tb:.2f}x",
            ],
            [
                "**SDK transport alone**: MGET + `_send` of prebuilt events (the floor `get_decisions` is held to)",
                f"{per_round * args.rounds:,}",
                f"{tb:,.0f}",
                f"{1e6 / tb:.1f}",
                f"{rb / tb:.2f}x",
                "1.00x",
            ],
            [
                "SDK's per-decision steps alone, no Redis (diagnostic)",
                f"{per_round * args.rounds:,}",
                f"{wb:,.0f}",
                f"{1e6 / wb:.1f}",
                f"{rb / wb:.2f}x",
                f"{wb / tb:.2f}x",
            ],
        ],
    )
    target_table = C.table(
        ["target", "measured", "verdict"],
        [
            [
                f"SDK ≤ {TARGET_OVERHEAD}x raw, p50 latency",
                f"{p50_ratio:.2f}x",
                C.verdict(p50_ratio <= TARGET_OVERHEAD, f"{p50_ratio / TARGET_OVERHEAD:.2f}x the limit"),
            ],
            [
                f"SDK ≤ {TARGET_OVERHEAD}x raw, time per call (throughput)",
                f"{rate_ratio:.2f}x",
                C.verdict(rate_ratio <= TARGET_OVERHEAD, f"{rate_ratio / TARGET_OVERHEAD:.2f}x the limit"),
            ],
            [
                f"p99 < {TARGET_P99_MS} ms",
                f"{s['p99']:.3f} ms",
                C.verdict(s["p99"] < TARGET_P99_MS, f"{s['p99'] / TARGET_P99_MS:.2f}x the limit"),
            ],
            [
                f"`get_decisions` ≥ {TARGET_OF_TRANSPORT}x the SDK's packed transport (batches of "
                f"{args.batch_size:,}, {tb:,.0f}/s)",
                f"{sb / tb:.2f}x",
                C.verdict(sb / tb >= TARGET_OF_TRANSPORT, f"{sb / tb / TARGET_OF_TRANSPORT:.2f}x the target"),
            ],
            [
                f"batches ≥ {TARGET_BATCH_PER_S:,} decisions/s on one core",
                f"{sb:,.0f}/s",
                C.verdict(sb >= TARGET_BATCH_PER_S, f"{sb / TARGET_BATCH_PER_S:.2f}x the target"),
            ],
        ],
    )
    sdk_us, io_us, work_us = 1e6 / sb, 1e6 / tb, 1e6 / wb
    rest_us = sdk_us - io_us - work_us
    split_table = C.table(
        ["part of one batched decision", "µs", "share"],
        [
            [
                "the SDK's transport: MGET + `_send` (measured alone)",
                f"{io_us:.1f}",
                f"{io_us / sdk_us:.0%}",
            ],
            [
                "the SDK's per-decision steps (same steps in a loop, no Redis)",
                f"{work_us:.1f}",
                f"{work_us / sdk_us:.0%}",
            ],
            [
                "rest: the batch method's own loop and lists (difference; noise is ±10%)",
                f"{rest_us:.1f}",
                f"{rest_us / sdk_us:.0%}",
            ],
            ["**SDK `get_decisions`, measured**", f"**{sdk_us:.1f}**", "100%"],
        ],
    )
    step_sum = sum(us for _, us in steps)
    step_table = C.table(
        ["per-decision step (timeit, best of 5, no network)", "µs", "share of the steps"],
        [[name, f"{us:.1f}", f"{us / step_sum:.0%}"] for name, us in steps]
        + [["**sum**", f"**{step_sum:.1f}**", "100%"]],
    )
    groups = sorted(set(shares_single) | set(shares_batch), key=lambda g: -shares_batch.get(g, 0.0))
    share_table = C.table(
        ["component (cProfile own time)", "single calls", "batches"],
        [
            [g, f"{100 * shares_single.get(g, 0):.0f}%", f"{100 * shares_batch.get(g, 0):.0f}%"]
            for g in groups
            if max(shares_single.get(g, 0), shares_batch.get(g, 0)) >= 0.005
        ],
    )
    sizes = (
        f"Sizes: {s['n']:,} sequential calls per loop and {per_round * args.rounds:,} decisions "
        f"in batches of {args.batch_size:,} per loop, split over {args.rounds} rounds in rotating "
        f"order after a warm-up; {args.units:,} units with a published entry (blueprint "
        f"`{BLUEPRINT}`, every lookup hits); one connection per client; Redis on loopback, "
        "sharing the same cores."
    )
    report = "\n\n".join(
        [
            sizes,
            "### Single calls",
            single_table,
            "### Batches",
            batch_table,
            "### Targets",
            target_table,
            "### Where the SDK's time goes",
            "A batched decision split into its parts (medians of the rotating rounds above):",
            split_table,
            "The per-decision steps, each timed alone:",
            step_table,
            "Own time by component under cProfile (profiling inflates pure-Python code "
            "relative to C calls; read it as an ordering):",
            share_table,
        ]
    )
    print(report)
    print("\ncProfile, single calls, top by own time:\n" + top_single)
    print("\ncProfile, batches, top by own time:\n" + top_batch)
    if args.docs:
        details = (
            "<details><summary>cProfile top functions (single calls, then batches)</summary>"
            "\n\n```\n" + top_single + "\n\n" + top_batch + "\n```\n</details>"
        )
        C.write_section("get_decision", "SDK `get_decision` vs raw redis-py", report + "\n\n" + details)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
