"""Benchmark ``publish_policy`` against a raw pipelined redis-py write of the same payloads.

``publish_policy`` takes a policy frame (unit, chosen action, one score per action)
for a million units, encodes every entry, writes ``SET key value EX ttl`` of each in
script calls of ``batch_size`` entries (``redis_batches.BatchWriter``) and switches the
active pointer. The baseline writes the very same keys and values, already encoded
(its payload building is not timed), with redis-py's own pipeline
(``pipe.set(key, value, ex=ttl)``, 10,000 per pipeline). The two alternate over
several rounds on the same Redis, flushed before each run, so that load from other
work on the machine hits both alike.

    python bench/bench_publish.py                 # 1,000,000 units, 3 rounds per side
    python bench/bench_publish.py --quick         # 100,000 units, 1 round
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence

import _common as C
import numpy as np
import pandas as pd
import redis

from looper_common.contracts import policy_store
from looper_common.contracts.blueprint import load_blueprint
from looper_common.publishing.redis_policy import encode_entries, publish_policy
from looper_common.sdk.redis_batches import PER_CALL

BLUEPRINT = "notification_send"
VERSION = "20260103-m4-bench"
TTL = 7 * 86_400
TARGET_SECONDS, TARGET_RATIO = 30.0, 2.0


def policy_units(n: int, seed: int = 7) -> pd.DataFrame:
    """A policy frame as ``policies.policy_frame`` makes it, with random scores."""
    rng = np.random.default_rng(seed)
    send, skip = rng.random(n) * 0.3, rng.random(n) * 0.05  # P(click | action)
    return pd.DataFrame({
        "unit_id": [f"user_{i}" for i in range(n)],
        "action": np.where(send >= 0.1, "send", "skip"),
        "score_send": send,
        "score_skip": skip,
    })


def raw_write(r: redis.Redis, keys: list[str], values: list[bytes], batch_size: int = 10_000) -> None:
    """The baseline: redis-py's pipeline, one ``set(..., ex=)`` per entry."""
    for lo in range(0, len(keys), batch_size):
        pipe = r.pipeline(transaction=False)
        for key, value in zip(keys[lo:lo + batch_size], values[lo:lo + batch_size], strict=True):
            pipe.set(key, value, ex=TTL)
        pipe.execute()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="100,000 units, one round")
    p.add_argument("--units", type=int, help="units to publish (default 1,000,000; quick 100,000)")
    p.add_argument("--rounds", type=int, help="runs per side, alternating (default 3; quick 1)")
    p.add_argument("--batch-size", type=int, default=PER_CALL,
                   help=f"entries per publish_policy script call (default {PER_CALL:,})")
    p.add_argument("--raw-batch-size", type=int, default=10_000,
                   help="entries per pipeline of the baseline (default 10,000)")
    p.add_argument("--redis-url",
                   help="an empty Redis database (default: a throwaway redis-server)")
    C.add_docs_option(p)
    args = p.parse_args(argv)
    args.units = args.units or (100_000 if args.quick else 1_000_000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.docs = C.docs_wanted(args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    blueprint = load_blueprint(C.ROOT / "blueprints" / f"{BLUEPRINT}.yaml")
    units = policy_units(args.units)
    keys = [policy_store.entry_key(BLUEPRINT, VERSION, u) for u in units["unit_id"]]
    values = encode_entries(units, blueprint)
    probe = [0, args.units // 2, args.units - 1]
    times: dict[str, list[float]] = {"publish": [], "raw": []}
    memory: list[int] = []

    with C.redis_server(args.redis_url) as url:
        r = redis.Redis.from_url(url, socket_timeout=60)

        def run_publish() -> None:
            stats = publish_policy(r, blueprint, units, version=VERSION, ttl_seconds=TTL,
                                   batch_size=args.batch_size)
            if not stats.switched or r.dbsize() != args.units + 2:  # + pointer and meta hash
                raise SystemExit(f"publish_policy wrote {r.dbsize()} keys for {args.units} units")

        def run_raw() -> None:
            raw_write(r, keys, values, args.raw_batch_size)

        sides = {"publish": run_publish, "raw": run_raw}
        for round_ in range(args.rounds):
            order = ["publish", "raw"] if round_ % 2 == 0 else ["raw", "publish"]
            for side in order:
                r.flushdb()
                started = time.perf_counter()
                sides[side]()
                times[side].append(time.perf_counter() - started)
                if r.mget([keys[i] for i in probe]) != [values[i] for i in probe]:
                    raise SystemExit(f"{side}: the written entries differ from the payloads")
                if not 0 < r.ttl(keys[probe[1]]) <= TTL:
                    raise SystemExit(f"{side}: entries have no TTL")
                memory.append(int(r.info("memory")["used_memory"]))
                print(f"round {round_ + 1} {side:>7}: {times[side][-1]:6.1f} s", flush=True)
        r.flushdb()

    pub, raw = C.median(times["publish"]), C.median(times["raw"])
    ratio = pub / raw
    rows = [
        ["`publish_policy` (encode + write + switch)", *(f"{t:.1f}" for t in times["publish"]),
         f"**{pub:.1f}**", f"{args.units / pub:,.0f}", f"{ratio:.2f}x"],
        ["raw redis-py pipeline `set(k, v, ex=ttl)` (payloads prebuilt)",
         *(f"{t:.1f}" for t in times["raw"]), f"**{raw:.1f}**", f"{args.units / raw:,.0f}",
         "1.00x"],
    ]
    headers = ["side", *(f"round {i + 1} (s)" for i in range(args.rounds)), "median (s)",
               "entries/s", "time / raw"]
    targets = "\n".join([
        f"- {args.units:,} units in under {TARGET_SECONDS:.0f} s: "
        + C.verdict(pub < TARGET_SECONDS, f"median {pub:.1f} s"),
        f"- within {TARGET_RATIO:.0f}x of the raw pipeline: "
        + C.verdict(ratio <= TARGET_RATIO, f"{ratio:.2f}x"),
        f"- Redis memory with {args.units:,} entries: {max(memory) / 2**20:,.0f} MiB "
        f"({max(memory) / args.units:.0f} B per entry)",
    ])
    sizes = (
        f"{args.units:,} units of `{BLUEPRINT}` (2 actions, full-precision scores: entries of "
        f"{int(np.mean([len(values[i]) for i in probe]))} bytes, keys of {len(keys[probe[1]])}), "
        f"TTL {TTL // 86_400} days, one local redis-server; "
        f"{args.rounds} round(s) per side, alternating, `FLUSHDB` before each run. "
        "`publish_policy` pays for encoding its entries and the pointer switch; the baseline "
        "gets its payloads ready-made. `publish_policy` writes its entries in script calls of "
        f"{args.batch_size:,} (`redis_batches.BatchWriter`: one command and one reply per call, "
        "the keys in `KEYS`); the baseline uses redis-py's per-command pipeline, "
        f"{args.raw_batch_size:,} per pipeline, whose Python overhead, not Redis, bounds a write of this size."
    )
    report = "\n\n".join([sizes, C.table(headers, rows), "### Targets", targets])
    print()
    print(report)
    if args.docs:
        C.write_section("publish", "Publishing policies", report)
    return 0 if pub < TARGET_SECONDS and ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
