"""Benchmark online scoring (``serving.mode: online``) beside the lookup path, in one run.

One hist-GBDT champion of ``notification_send`` is fitted on synthetic decisions and
published both ways against the same Redis: per-unit entries (lookup) and its compact
form (online). Two clients of the same blueprint, one per mode, then make:

- single decisions (``get_decision``), p50/p99 per call;
- batches of 1,000 (``get_decisions``), decisions per second;
- a version switch: the time ``OnlineModels`` takes to read, check (sha256) and
  compile the new version's compact model, paid once per version.

The lookup side is the baseline; the ratios are online/lookup. Rounds rotate which
side goes first, so load from other work on the machine hits both alike.

    python bench/bench_online.py            # 5,000 calls and 40 batches per side
    python bench/bench_online.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import _common as C
import numpy as np
import pandas as pd
import redis
from bench_get_decision import FEATURES, rotate, timed_batches, timed_calls

from looper_common.contracts import events
from looper_common.contracts.blueprint import load_blueprint
from looper_common.decision_science.policies import policy_frame
from looper_common.publishing.compact_model import compact_document, encode_document, publish_for_serving
from looper_common.publishing.redis_policy import publish_policy
from looper_common.sdk.client import LooperClient
from looper_common.sdk.online import OnlineModels, load_document
from looper_common.training.examples import to_model_frame
from looper_common.training.families import build_model

BLUEPRINT = "notification_send"
VERSION = "v1"
PARAMS = {"family": "hist_gbdt", "learning_rate": 0.1, "max_leaf_nodes": 32, "min_samples_leaf": 20,
          "l2_regularization": 0.01}
TARGET_P99_MS = 2.0
TARGET_SINGLE_RATIO = 3.0  # online p99 within 3x the lookup's
TARGET_BATCH_SHARE = 1 / 3  # online batch rate at least a third of the lookup's


def decisions(n: int, seed: int) -> pd.DataFrame:
    """Synthetic logged decisions of notification_send with a planted, non-linear effect."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "unit_id": [f"user_{i}" for i in range(n)],
        "days_since_last_visit": rng.exponential(5.0, n),
        "sessions_last_7d": rng.integers(0, 15, n).astype(float),
        "push_opt_in": rng.random(n) < 0.6,
        "country": rng.choice(["us", "gb", "de", "in", "br"], n),
        "platform": rng.choice(["ios", "android", "web"], n),
        "action": rng.choice(["send", "skip"], n),
    })
    lift = frame["push_opt_in"] * (frame["days_since_last_visit"] < 4) * (frame["platform"] != "web") * 0.4
    p = 0.05 + 0.02 * np.minimum(frame["sessions_last_7d"], 10) + np.where(frame["action"] == "send", lift, 0.0)
    frame["clicked"] = (rng.random(n) < p).astype(int)
    return frame


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    p.add_argument("-n", "--calls", type=int, help="single calls per side (default 5,000; quick 500)")
    p.add_argument("--batches", type=int, help="batches of 1,000 per side (default 40; quick 4)")
    p.add_argument("--rounds", type=int, default=5, help="rounds the sizes are split over (order rotates)")
    p.add_argument("--units", type=int, default=20_000, help="units with a published entry")
    p.add_argument("--train-rows", type=int, default=20_000, help="decisions the champion is fitted on")
    p.add_argument("--redis-url", help="an empty Redis database (default: a throwaway redis-server)")
    C.add_docs_option(p)
    args = p.parse_args(argv)
    args.calls = args.calls or (500 if args.quick else 5_000)
    args.batches = args.batches or (4 if args.quick else 40)
    args.docs = C.docs_wanted(args)
    return args


def largest_model_costs(train: pd.DataFrame, blueprint) -> tuple[int, float, float, float]:
    """The search space's largest hist_gbdt (200 iterations, no early stopping): KiB, load ms, µs per decision.

    Scoring only (no Redis): ``CompactModel.entries`` over 1,000 requests, best of 3.
    """
    model = build_model(dict(PARAMS), "binary", ["country", "platform", "action"],
                        ["days_since_last_visit", "sessions_last_7d", "push_opt_in"])
    model.set_params(model__early_stopping=False)
    model.fit(to_model_frame(train, blueprint), train["clicked"].to_numpy())
    raw, digest = encode_document(compact_document(model, blueprint))
    t0 = time.perf_counter()
    compact = load_document(raw, digest)
    load_ms = (time.perf_counter() - t0) * 1e3
    requests = [(f"user_{i}", FEATURES) for i in range(1_000)]
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        compact.entries(requests, [None] * len(requests))
        best = min(best, time.perf_counter() - t0)
    return model.named_steps["model"].n_iter_, len(raw) / 1024, load_ms, best * 1e3


def _latency(runs) -> dict[str, float]:
    lat = [x for lats, _ in runs for x in lats]
    return {"p50": C.percentile(lat, 50) / 1e6, "p99": C.percentile(lat, 99) / 1e6}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    lookup_bp = load_blueprint(C.ROOT / "blueprints" / f"{BLUEPRINT}.yaml")
    online_bp = lookup_bp.model_copy(update={"serving": lookup_bp.serving.model_copy(update={"mode": "online"})})
    train = decisions(args.train_rows, 1)
    started = time.perf_counter()
    model = build_model(dict(PARAMS), "binary", ["country", "platform", "action"],
                        ["days_since_last_visit", "sessions_last_7d", "push_opt_in"])
    model.fit(to_model_frame(train, lookup_bp), train["clicked"].to_numpy())
    fit_s = time.perf_counter() - started
    estimator = model.named_steps["model"]
    leaves = sum(int(p.nodes["is_leaf"].sum()) for it in estimator._predictors for p in it)
    known = decisions(args.units, 2)
    units = list(known["unit_id"])
    requests = [(u, FEATURES) for u in units]
    batches = [requests[b * 1_000:(b + 1) * 1_000] for b in range(min(20, len(units) // 1_000))]
    rounds = max(1, args.rounds)

    with C.redis_server(args.redis_url) as url:
        r = redis.Redis.from_url(url)
        meta = publish_for_serving(r, online_bp, VERSION, {"clicked": model}, None, ttl_seconds=3_600)
        publish_policy(r, lookup_bp, policy_frame(model, known, lookup_bp), version=VERSION, ttl_seconds=3_600,
                       meta=meta)
        raw = r.get(meta["compact_model"])
        lookup = LooperClient(url, blueprints={BLUEPRINT: lookup_bp})
        online = LooperClient(url, blueprints={BLUEPRINT: online_bp})
        probe = online.get_decision(BLUEPRINT, "never_published", FEATURES)
        if probe.is_default:
            raise SystemExit("the online client served the default: the compact model did not load")

        def single(client):
            return lambda i: client.get_decision(BLUEPRINT, units[i % len(units)], FEATURES)

        def batch(client):
            return lambda i: client.get_decisions(BLUEPRINT, batches[i % len(batches)])

        def reset() -> None:
            r.delete(events.stream_key(BLUEPRINT))

        for client in (lookup, online):  # warm-up: connections, pointer cache, the model
            timed_calls(single(client), 200)
            timed_batches(batch(client), 1)
        reset()
        per_round, batches_per_round = args.calls // rounds, max(1, args.batches // rounds)
        s_lookup, s_online = rotate(rounds, [lambda: timed_calls(single(lookup), per_round),
                                             lambda: timed_calls(single(online), per_round)], reset)
        b_lookup, b_online = rotate(rounds, [lambda: timed_batches(batch(lookup), batches_per_round),
                                             lambda: timed_batches(batch(online), batches_per_round)], reset)
        loads = []
        for _ in range(5):
            t0 = time.perf_counter()
            if OnlineModels(r).get(BLUEPRINT, VERSION) is None:
                raise SystemExit("the compact model did not load")
            loads.append(time.perf_counter() - t0)
        reset()

    big_iterations, big_kib, big_load_ms, big_us = largest_model_costs(train, lookup_bp)
    lk, on = _latency(s_lookup), _latency(s_online)
    rate = {name: C.median([batches_per_round * 1_000 / sec for _, sec in runs])
            for name, runs in (("lookup", b_lookup), ("online", b_online))}
    load_ms = C.median(loads) * 1e3
    rows = [
        ["single decision p50 (ms)", f"{lk['p50']:.3f}", f"{on['p50']:.3f}", f"{on['p50'] / lk['p50']:.2f}x"],
        ["single decision p99 (ms)", f"{lk['p99']:.3f}", f"{on['p99']:.3f}", f"{on['p99'] / lk['p99']:.2f}x"],
        ["batches of 1,000 (decisions/s)", f"{rate['lookup']:,.0f}", f"{rate['online']:,.0f}",
         f"{rate['online'] / rate['lookup']:.3f}x"],
    ]
    body = "\n\n".join([
        f"Champion: hist_gbdt, {estimator.n_iter_} iterations, {leaves:,} leaves (fitted on {len(train):,} "
        f"synthetic decisions in {fit_s:.1f} s); compact form {len(raw) / 1024:,.0f} KiB of JSON. "
        f"Single calls: {args.calls:,} per side; batches: {args.batches} of 1,000 per side; {rounds} rounds, "
        "order rotating. Online scores every action with the pure-Python evaluator (`sdk/online.py`) and "
        "skips the MGET; both sides XADD the same event.",
        C.table(["", "lookup (baseline)", "online", "online/lookup"], rows),
        f"Model load at a version switch (HMGET + GET + sha256 + parse + compile, median of 5): {load_ms:.1f} ms.",
        f"The search space's largest hist_gbdt ({big_iterations} iterations, early stopping off, same data): "
        f"{big_kib:,.0f} KiB, loaded and compiled in {big_load_ms:,.0f} ms, scored in {big_us:.0f} µs per "
        "decision (both actions, no Redis, best of 3 x 1,000): cost grows with the number of trees.",
        "Targets: " + "; ".join([
            C.verdict(on["p99"] < TARGET_P99_MS, f"online p99 {on['p99']:.3f} ms < {TARGET_P99_MS} ms"),
            C.verdict(on["p99"] <= TARGET_SINGLE_RATIO * lk["p99"],
                      f"within {TARGET_SINGLE_RATIO:.0f}x the lookup's p99: {on['p99'] / lk['p99']:.2f}x"),
            C.verdict(rate["online"] >= TARGET_BATCH_SHARE * rate["lookup"],
                      f"batch rate at least 1/3 of the lookup's: {rate['online'] / rate['lookup']:.3f}"),
        ]) + ".",
    ])
    print(body)
    if args.docs:
        C.write_section("online", "Online scoring vs lookup (`bench/bench_online.py`)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
