"""Run the benchmarks in sequence (``make bench``); ``--quick`` is passed through.

Each benchmark runs its baseline in the same run and prints the ratio (except `dag`,
one whole DAG run timed per task); full-size runs also replace their section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import bench_dag
import bench_get_decision
import bench_ingest
import bench_join
import bench_ope
import bench_publish
import bench_sdk_failures
import serve_decisions

BENCHMARKS = {
    "get_decision": bench_get_decision.main,
    "ingest": bench_ingest.main,
    "join": bench_join.main,
    "ope": bench_ope.main,
    "publish": bench_publish.main,
    "sdk_failures": bench_sdk_failures.main,  # starts its own redis-server (it pauses and stops it)
    "serve": serve_decisions.main,
    "dag": bench_dag.main,  # last: the whole DAG on 1M decisions, the longest
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute each)")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append", help="run only these (repeatable)")
    parser.add_argument(
        "--redis-url",
        help="an empty Redis database (default: each starts a throwaway redis-server)",
    )
    args = parser.parse_args(argv)
    quick = ["--quick"] if args.quick else []
    redis_url = ["--redis-url", args.redis_url] if args.redis_url else []
    failed = []
    for name, run in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        extra = quick + (redis_url if name not in ("join", "ope", "sdk_failures") else [])
        print(f"\n===== {name} {' '.join(extra)} =====", flush=True)
        start = time.perf_counter()
        code = run(extra)
        print(f"===== {name}: exit {code} in {time.perf_counter() - start:.0f} s =====", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
