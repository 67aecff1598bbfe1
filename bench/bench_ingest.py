"""Benchmark ``ingest_events`` (Redis Stream to bronze Delta) against a plain XRANGE read.

Fills one blueprint's stream with decision and observation events (about 70/30, made
by the SDK's batch API so the JSON is exactly the SDK's, plus a few malformed entries),
keeps a server-side copy of it, then for each batch size: restores the stream, times
a plain ``XRANGE`` read of all of it in Python (the transport floor), and times
``ingest_events`` into a fresh lake (delta-rs in this process, no Spark). Checks that the
Delta tables hold exactly what was sent. Phases of ingestion are timed by wrapping the
module's functions (no change to it); the reader thread's phases overlap the writes, so
the phases add up to more than the total.

With ``--redis-only`` it times only ingestion's Redis path: the stream drained through
ingestion's own cursor (``_StreamCursor``: XREADGROUP chunks of 50,000 as
``_read_batch`` reads them, then XACK and XTRIM per batch), with no parsing and no
Delta, beside the XRANGE read, over several rounds; no Spark starts. Run it with
another checkout first on ``PYTHONPATH`` to compare that checkout's cursor.

    python bench/bench_ingest.py                  # 1,000,000 events, batch sizes 200k and 500k
    python bench/bench_ingest.py --quick          # 30,000 events in one batch, a minute or two
    python bench/bench_ingest.py --redis-only     # the cursor's read + ack alone, 1,000,000 events
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import wraps

import _common as C
import redis

from looper_common.contracts import events
from looper_common.contracts.blueprint import load_blueprints
from looper_common.ingest import streams as ingest
from looper_common.lake import delta
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE
from looper_common.sdk.client import LooperClient

BLUEPRINT = "notification_send"
DAY = datetime(2026, 1, 5, tzinfo=UTC)
TARGET_PER_S = 100_000
FLOOR_PER_S = 57_800  # the pyarrow-and-py4j writer this one replaced, 2026-11-29
MERGE = "delta-rs insert-only MERGE (bronze x2, quarantine)"
READ = "chunk thread: XREADGROUP (overlaps the parse)"
PARSE = "reader thread: a batch read, parsed and made Arrow (overlaps the writes)"
WAIT = "main thread: waiting for the reader, bookkeeping"
COUNTRIES, PLATFORMS = ("us", "gb", "de", "in", "br"), ("ios", "android", "web")


def fill_stream(
    client: LooperClient, r: redis.Redis, n_events: int, decision_share: float, n_bad: int
) -> dict[str, int]:
    """Send ``n_events`` events (``n_bad`` malformed) via the SDK; returns the counts sent."""
    rng = random.Random(11)
    n_dec = round(n_events * decision_share)
    n_obs = n_events - n_dec - n_bad
    chunk = 10_000
    obs_left, day_ms = n_obs, 86_400_000
    start_ms = int(DAY.timestamp() * 1000)
    for lo in range(0, n_dec, chunk):
        size = min(chunk, n_dec - lo)
        requests = [
            (
                f"user_{rng.randrange(1_000_000)}",
                {
                    "days_since_last_visit": round(rng.random() * 30, 2),
                    "sessions_last_7d": rng.randrange(20),
                    "push_opt_in": rng.random() < 0.6,
                    "country": rng.choice(COUNTRIES),
                    "platform": rng.choice(PLATFORMS),
                },
            )
            for _ in range(size)
        ]
        stamps = [start_ms + (lo + j) * day_ms // n_dec for j in range(size)]
        decisions = client.get_decisions(BLUEPRINT, requests, ts=stamps)
        # At most one observation per decision, so every observation event id is distinct;
        # the last chunk takes what is left.
        share = obs_left if lo + size >= n_dec else round(size * n_obs / n_dec)
        k = min(size, share, obs_left)
        obs_left -= k
        client.log_observations_batch(
            [
                (
                    d.decision_id,
                    {"click" if j % 4 else "unsubscribe": 1},
                    d.ts + rng.randrange(30 * 3_600_000),
                )
                for j, d in enumerate(decisions[:k])
            ],
            blueprint=BLUEPRINT,
        )
    stream = events.stream_key(BLUEPRINT)
    pipe = r.pipeline(transaction=False)
    for i in range(n_bad):
        kind = i % 3
        if kind == 0:
            payload = "{not json"
        elif kind == 1:  # an observation without value
            payload = json.dumps(
                {
                    "kind": "observation",
                    "event_id": f"bad-obs-{i}",
                    "decision_id": "x",
                    "blueprint": BLUEPRINT,
                    "name": "click",
                    "ts": start_ms,
                }
            )
        else:  # a decision with an impossible propensity
            payload = json.dumps(
                {
                    "kind": "decision",
                    "event_id": f"bad-dec-{i}",
                    "decision_id": f"bad-dec-{i}",
                    "blueprint": BLUEPRINT,
                    "blueprint_version": "x",
                    "unit_id": "u",
                    "ts": start_ms,
                    "features": {},
                    "action": "send",
                    "propensity": 0,
                    "action_probs": {"send": 1.0},
                    "is_default": False,
                }
            )
        pipe.xadd(stream, {events.PAYLOAD_FIELD: payload})
    pipe.execute()
    return {"decisions": n_dec, "observations": n_obs - obs_left, "quarantined": n_bad}


def xrange_read(r: redis.Redis, stream: str, page: int) -> tuple[int, float]:
    """Read the whole stream with XRANGE pages, decoding payloads as ingestion does."""
    start = time.perf_counter()
    total, position = 0, "-"
    while True:
        messages = r.xrange(stream, min=position, max="+", count=page)
        if not messages:
            break
        rows = [(stream, sid.decode(), (f.get(b"e") or b"").decode("utf-8", "replace")) for sid, f in messages]
        total += len(rows)
        last = rows[-1][1]
        ms, seq = last.split("-")
        position = f"{ms}-{int(seq) + 1}"
    return total, time.perf_counter() - start


def cursor_drain(r: redis.Redis, stream: str, batch_size: int) -> tuple[int, float, float]:
    """Drain ``stream`` with ingestion's cursor, acknowledging each batch: (entries, read s, ack s).

    The reads and acks ``ingest_events`` makes, without parsing or writing anything.
    """
    cursor = ingest._StreamCursor(r, stream)
    total, read_s, ack_s = 0, 0.0, 0.0
    while True:
        t0 = time.perf_counter()
        ids: list[str] = []
        while len(ids) < batch_size:
            chunk = cursor.read(min(batch_size - len(ids), 50_000))
            if not chunk:
                break
            ids.extend(sid for _, sid, _ in chunk)
        t1 = time.perf_counter()
        read_s += t1 - t0
        if not ids:
            return total, read_s, ack_s
        cursor.acknowledge(ids)
        ack_s += time.perf_counter() - t1
        total += len(ids)


def redis_only(args: argparse.Namespace) -> int:
    """``--redis-only``: the cursor's read + ack beside XRANGE, ``args.rounds`` rounds per batch size."""
    blueprints = load_blueprints(C.ROOT / "blueprints")
    stream, backup = events.stream_key(BLUEPRINT), "bench:ingest:backup"
    rows = []
    with C.redis_server(args.redis_url) as url:
        r = redis.Redis.from_url(url)
        client = LooperClient(url, blueprints=blueprints, random_bits=random.Random(5).getrandbits)
        fill_stream(client, r, args.events, args.decision_share, args.malformed)
        n_entries = r.xlen(stream)
        r.copy(stream, backup)
        for batch_size in args.batch_sizes:
            xr, reads, acks = [], [], []
            for _ in range(args.rounds):
                r.delete(stream)
                r.copy(backup, stream)
                read, seconds = xrange_read(r, stream, min(batch_size, 100_000))
                xr.append(seconds)
                drained, read_s, ack_s = cursor_drain(r, stream, batch_size)
                if read != n_entries or drained != n_entries or r.xlen(stream) != 0:
                    raise SystemExit(f"read {read}, drained {drained} of {n_entries}; {r.xlen(stream)} left")
                reads.append(read_s)
                acks.append(ack_s)
            xm, rm, am = C.median(xr), C.median(reads), C.median(acks)
            rows.append([f"{batch_size:,}", f"{n_entries:,}", args.rounds, f"{xm:.2f}", f"{rm:.2f}", f"{am:.2f}",
                         f"{rm + am:.2f}", f"{n_entries / (rm + am):,.0f}", f"{(rm + am) / xm:.2f}x"])
    print(f"cursor: {ingest._StreamCursor.__module__} from {ingest.__file__}")
    print(C.table(["batch size", "entries", "rounds", "XRANGE read s (baseline)", "cursor read s",
                   "XACK + XTRIM s", "read + ack s", "entries/s", "(read + ack) / XRANGE"], rows))
    return 0


class PhaseTimer:
    """Wraps ``looper_common.ingest.streams`` functions to add up the seconds spent in each."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)

        @wraps(original)
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t0

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def __enter__(self) -> PhaseTimer:
        self.wrap(ingest._StreamCursor, "read", READ)
        self.wrap(ingest, "_read_batch", PARSE)
        self.wrap(delta, "insert_new", MERGE)
        self.wrap(ingest, "write_batch", "_write_batch")
        self.wrap(ingest._StreamCursor, "acknowledge", "XACK + XTRIM")
        return self

    def __exit__(self, *exc: object) -> None:
        for undo in reversed(self._undo):
            undo()

    def phases(self, total: float) -> list[tuple[str, float]]:
        """Seconds per phase. The reader thread's phases overlap the writes: they do not add up."""
        s = dict(self.seconds)
        write = s.pop("_write_batch", 0.0)
        s["rest of write_batch (opening the tables, partition lists)"] = write - s.get(MERGE, 0.0)
        s[WAIT] = total - write - s.get("XACK + XTRIM", 0.0)
        return sorted(s.items(), key=lambda kv: -kv[1])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (a minute or two)")
    p.add_argument("--events", type=int, help="events in the stream (default 1,000,000; quick 30,000)")
    p.add_argument("--decision-share", type=float, default=0.7, help="share of decision events")
    p.add_argument("--malformed", type=int, help="malformed entries among them (default 30; quick 9)")
    p.add_argument(
        "--batch-sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        help="comma-separated ingest batch sizes (default 200000,500000; quick 30000)",
    )
    p.add_argument("--redis-url", help="an empty Redis database (default: a throwaway redis-server)")
    p.add_argument("--keep", action="store_true", help="keep the scratch lake under /tmp")
    p.add_argument("--redis-only", action="store_true", help="time only the cursor's read + ack (no Spark)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per batch size with --redis-only (default 3)")
    C.add_docs_option(p)
    args = p.parse_args(argv)
    args.events = args.events or (30_000 if args.quick else 1_000_000)
    args.malformed = args.malformed if args.malformed is not None else (9 if args.quick else 30)
    args.batch_sizes = args.batch_sizes or ([30_000] if args.quick else [200_000, 500_000])
    args.docs = C.docs_wanted(args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.redis_only:
        return redis_only(args)
    blueprints = load_blueprints(C.ROOT / "blueprints")
    stream, backup = events.stream_key(BLUEPRINT), "bench:ingest:backup"
    results, phase_rows = [], []
    with (
        C.redis_server(args.redis_url) as url,
        C.temp_dir("looper-bench-ingest-", args.keep) as scratch,
    ):
        r = redis.Redis.from_url(url)
        client = LooperClient(url, blueprints=blueprints, random_bits=random.Random(5).getrandbits)
        t0 = time.perf_counter()
        sent = fill_stream(client, r, args.events, args.decision_share, args.malformed)
        n_entries = r.xlen(stream)
        print(f"filled {stream} with {n_entries:,} entries {sent} in {time.perf_counter() - t0:.0f} s")
        r.copy(stream, backup)
        # Warm up (imports, delta-rs' runtime) on a small separate stream and lake.
        warm = LooperClient(url, blueprints=blueprints)
        warm.get_decisions(
            "feed_layout",
            [
                (f"u{i}", {"age_bucket": "18_24", "platform": "ios", "screen_inches": 6.1, "items_viewed_7d": 3})
                for i in range(2_000)
            ],
        )
        ingest.ingest_events(r, Lake(str(scratch / "warm")), blueprints, streams=[events.stream_key("feed_layout")])
        for batch_size in args.batch_sizes:
            r.delete(stream)
            r.copy(backup, stream)
            read, xrange_s = xrange_read(r, stream, min(batch_size, 100_000))
            assert read == n_entries, (read, n_entries)
            lake = Lake(str(scratch / f"lake-{batch_size}"))
            with PhaseTimer() as timer:
                stats = ingest.ingest_events(r, lake, blueprints, streams=[stream], batch_size=batch_size)
            counts = {
                "decisions": lake.read(BRONZE_DECISIONS).table.num_rows,
                "observations": lake.read(BRONZE_OBSERVATIONS).table.num_rows,
                "quarantined": lake.read(QUARANTINE).table.num_rows,
            }
            unique = len(set(lake.read(BRONZE_DECISIONS, columns=["event_id"]).table["event_id"].to_pylist()))
            ok = counts == sent and unique == sent["decisions"] and stats.events == n_entries and r.xlen(stream) == 0
            print(
                f"batch size {batch_size:,}: {stats.summary()}; XRANGE {xrange_s:.1f} s; "
                f"tables {counts} vs sent {sent}: {'OK' if ok else 'MISMATCH'}"
            )
            results.append((batch_size, stats, xrange_s, counts, ok))
            phase_rows.append((batch_size, timer.phases(stats.seconds)))
            shutil.rmtree(lake.root, ignore_errors=True)

    best = max(results, key=lambda x: x[1].events / x[1].seconds)
    rate = best[1].events / best[1].seconds
    main_table = C.table(
        [
            "batch size",
            "events",
            "batches",
            "XRANGE read s (baseline)",
            "ingest_events s",
            "events/s",
            "ingest / XRANGE",
            "Delta counts vs sent",
        ],
        [
            [
                f"{bs:,}",
                f"{st.events:,}",
                st.batches,
                f"{xs:.1f}",
                f"{st.seconds:.1f}",
                f"{st.events / st.seconds:,.0f}",
                f"{st.seconds / xs:.1f}x",
                ("OK" if ok else "MISMATCH")
                + f" ({cn['decisions']:,} / {cn['observations']:,} / {cn['quarantined']:,})",
            ]
            for bs, st, xs, cn, ok in results
        ],
    )
    phase_names = list(dict.fromkeys(name for _, ph in phase_rows for name, _ in ph))
    phase_table = C.table(
        ["phase of ingest_events (s)"] + [f"batch {bs:,}" for bs, _ in phase_rows],
        [[name] + [f"{dict(ph).get(name, 0.0):.1f}" for _, ph in phase_rows] for name in phase_names],
    )
    target = C.table(
        ["target", "measured (best batch size)", "verdict"],
        [
            [
                f"≥ {TARGET_PER_S:,} events/s on 2 cores (goal)",
                f"{rate:,.0f} events/s (batch {best[0]:,})",
                C.verdict(rate >= TARGET_PER_S, f"{rate / TARGET_PER_S:.2f}x the goal"),
            ],
            [
                f"≥ {FLOOR_PER_S:,} events/s (the writer it replaced)",
                f"{rate:,.0f} events/s",
                C.verdict(rate >= FLOOR_PER_S, f"{rate / FLOOR_PER_S:.2f}x"),
            ],
        ],
    )
    sizes = (
        f"Sizes: {n_entries:,} stream entries: {sent['decisions']:,} decisions, "
        f"{sent['observations']:,} observations, {sent['quarantined']} malformed (blueprint "
        f"`{BLUEPRINT}`, made with the SDK's batch API); each batch size starts from the same "
        "stream (restored with `COPY`) and an empty lake, after a warm-up run; the writes run "
        "on delta-rs in the benchmark's process (no Spark). The XRANGE baseline reads pages "
        "of min(batch size, 100,000) and decodes the payloads to str, as ingestion does. Counts column: decisions / "
        "observations / quarantined rows in Delta."
    )
    report = "\n\n".join([sizes, main_table, "### Targets", target, "### Where the time goes", phase_table])
    print(report)
    if args.docs:
        C.write_section("ingest", "Ingestion: `ingest_events` vs XRANGE", report)
    return 0 if all(r[4] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
