"""Benchmark ``monitor_blueprint``'s checks next to ``join_feedback`` on the same 1,000,000 decisions.

The bronze tables are generated as in ``bench_join`` (decisions spread over the
interval that matures on the run date, observations for every third one). Spark runs
``join_feedback`` for the run date; then the monitor measures and records the same day
(``monitor.record_day``: drift against the day before, serving health with 1,000
replayed decisions, the data flow, online value over the matured examples; no Redis,
no dashboard). The lake reads as it does in the DAG: delta-rs up to
``local_read_max_mb``, Spark above. Prints both times and their ratio.

    python bench/bench_monitor.py                 # 1,000,000 decisions, 500,000 observations
    python bench/bench_monitor.py --quick         # 100,000 / 50,000
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import _common as C
import bench_join as J

from looper_common.contracts.blueprint import load_blueprint
from looper_common.labels import join as feedback
from looper_common.labels.days import maturity_bounds
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS
from looper_common.monitoring.monitor import record_day


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--decisions", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = p.parse_args(argv)
    n = args.decisions or (100_000 if args.quick else 1_000_000)
    bp = load_blueprint(C.ROOT / "blueprints" / f"{J.BLUEPRINT}.yaml")
    lo, hi = maturity_bounds(bp, J.RUN_DATE)
    lo_us = int(lo.timestamp()) * 1_000_000
    step_us = (int(hi.timestamp()) * 1_000_000 - lo_us) // (n + 1)
    parts = max(2, math.ceil(n / 1_500_000))
    with C.temp_dir("looper-bench-monitor-", args.keep) as scratch:
        spark, _ = C.spark_session(scratch, "looper-bench-monitor")
        lake = Lake(str(scratch / "lake"), spark=lambda: spark)
        lake.ensure_tables()
        J.write_once(lake, spark, BRONZE_DECISIONS, J.make_decisions(spark, bp, n, lo_us, step_us, parts))
        J.write_once(lake, spark, BRONZE_OBSERVATIONS,
                     J.make_observations(spark, bp, n // 2, n, lo_us, step_us, max(2, parts // 2)))
        t0 = time.perf_counter()
        stats = feedback.join_feedback(lake, bp, J.RUN_DATE)
        join_s = time.perf_counter() - t0
        print(f"join_feedback: {join_s:.1f} s ({stats['examples']:,} examples), load {C.os.getloadavg()[0]:.1f}")
        t0 = time.perf_counter()
        run = record_day(lake, bp, J.RUN_DATE, None)
        monitor_s = time.perf_counter() - t0
        print(f"monitor record_day: {monitor_s:.1f} s, load {C.os.getloadavg()[0]:.1f}; {run.summary()}")
        spark.stop()
    print(C.table(["step", "decisions", "seconds"],
                  [["join_feedback (Spark)", f"{n:,}", f"{join_s:.1f}"],
                   ["monitor_blueprint checks", f"{n:,}", f"{monitor_s:.1f}"]]))
    print(f"monitor / join: {monitor_s / join_s:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
