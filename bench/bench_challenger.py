"""Benchmark ``get_decisions`` with no challenger, a shadow one and a canary (lookup mode), side by side.

One throwaway redis-server; the champion's and the challenger's per-unit entries are
published for the same units (``publish_policy``, the challenger with ``switch=False``)
and the challenger key is set as ``publishing.challenger`` sets it. Each stage gets its
own blueprint (``notification_send`` with ``promotion.stage`` replaced) and client; the
three loops rotate over rounds of 1,000-decision batches, so load from other work on
the machine hits them alike. A shadow costs one more MGET and the shadow fields'
encoding per batch; a canary splits the batch in two serving plans.

    python bench/bench_challenger.py            # 10 rounds of 10 batches
    python bench/bench_challenger.py --quick    # a few seconds, prints only
"""

from __future__ import annotations

import argparse
import time

import _common as C
import pandas as pd
import redis

from looper_common.contracts import events, policy_store
from looper_common.contracts.blueprint import load_blueprint
from looper_common.publishing.challenger import challenger_document
from looper_common.publishing.redis_policy import publish_policy
from looper_common.sdk.client import LooperClient

FEATURES = {"days_since_last_visit": 3.5, "sessions_last_7d": 2, "push_opt_in": True, "country": "us",
            "platform": "ios"}
BATCH = 1_000
STAGES = {"none": {}, "shadow": {"stage": "shadow"}, "canary 10%": {"stage": "canary", "canary": {"share": 0.1}}}


def _blueprint(name: str, promotion: dict):
    base = load_blueprint(C.ROOT / "blueprints" / "notification_send.yaml")
    data = base.model_dump(mode="json")
    data["name"], data["promotion"] = name, {**data["promotion"], **promotion}
    data.pop("serving", None)  # lookup: the per-unit path every mode falls back to
    return type(base).model_validate(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis-url", default=None)
    C.add_docs_option(parser)
    args = parser.parse_args()
    rounds, batches = (3, 3) if args.quick else (10, 10)
    units = [f"u{i}" for i in range(BATCH * 5)]
    with C.redis_server(args.redis_url) as url:
        client = redis.Redis.from_url(url)
        loops = {}
        for i, (label, promotion) in enumerate(STAGES.items()):
            bp = _blueprint(f"bench_challenger_{i}", promotion)
            frame = pd.DataFrame({"unit_id": units, "action": "send", "score_send": 0.7, "score_skip": 0.3})
            publish_policy(client, bp, frame, version="20260101-m1-champ", ttl_seconds=3600)
            publish_policy(client, bp, frame.assign(action="skip"), version="20260101-m2-chall", ttl_seconds=3600,
                           switch=False)
            if promotion:
                client.set(policy_store.challenger_key(bp.name), challenger_document("20260101-m2-chall", bp))
            sdk = LooperClient(url, blueprints={bp.name: bp}, pointer_ttl_s=60.0)
            requests = [[(u, FEATURES) for u in units[k * BATCH:(k + 1) * BATCH]] for k in range(5)]
            loops[label] = (sdk, bp, requests)
        for sdk, bp, requests in loops.values():  # warm-up: plans, caches, connections
            sdk.get_decisions(bp.name, requests[0])
        seconds = {label: 0.0 for label in loops}
        for _ in range(rounds):
            for label, (sdk, bp, requests) in loops.items():
                started = time.perf_counter()
                for b in range(batches):
                    sdk.get_decisions(bp.name, requests[b % 5])
                seconds[label] += time.perf_counter() - started
                client.delete(events.stream_key(bp.name))
        for sdk, _, _ in loops.values():
            sdk.close()
    n = rounds * batches * BATCH
    base = n / seconds["none"]
    rows = [(label, f"{n / s:,.0f}", f"{(n / s) / base:.2f}") for label, s in seconds.items()]
    body = (f"`get_decisions` in {BATCH:,}-decision batches, lookup mode, epsilon-greedy, "
            f"{n:,} decisions per stage over {rounds} rotating rounds.\n\n"
            + C.table(["challenger stage", "decisions/s", "× no challenger"], rows))
    print(body)
    if C.docs_wanted(args):
        C.write_section("challenger", "Shadow and canary challengers: decision rate (bench_challenger.py)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
