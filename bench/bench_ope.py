"""Benchmark off-policy evaluation (``looper_common.decision_science.ope``, both engines) against plain NumPy.

Generates logged decisions with Spark straight into Parquet (written once): two
actions, a behaviour policy with propensities between 0.1 and 0.9, a reward model's
``q_hat`` per action, Bernoulli rewards, and a target policy's distribution. Then, on
the same files, in the same run:

* Spark: ``ope.evaluate`` on the DataFrame (IPS, SNIPS, DM, DR, 200 bootstrap
  resamples), wall time;
* NumPy: the same IPS and DR point estimates with plain array arithmetic on the
  columns loaded with pyarrow (load time reported separately);
* the NumPy engine: ``ope.evaluate`` on those loaded columns (everything Spark's
  call computes, in the driver), wall time.

The estimates must agree to 1e-9 relative, and the NumPy engine's intervals with
Spark's (printed OK or MISMATCH). The ratios are over NumPy's time (points only,
after the load).

    python bench/bench_ope.py              # 10,000,000 logged decisions
    python bench/bench_ope.py --quick      # 200,000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import _common as C
import numpy as np
import pyarrow.parquet as pq
from pyspark.sql import functions as F

from looper_common.decision_science import ope

TOLERANCE = 1e-9


def generate(spark, n: int, path: str) -> None:
    u = [F.rand(seed) for seed in range(5)]
    frame = spark.range(n).select(
        F.concat(F.lit("d"), F.col("id").cast("string")).alias("decision_id"),
        *(x.alias(f"u{i}") for i, x in enumerate(u)),
    )
    p_first = F.lit(0.1) + F.lit(0.8) * F.col("u0")
    action = F.when(F.col("u1") < p_first, 0).otherwise(1)
    q0, q1 = F.lit(0.05) + F.lit(0.3) * F.col("u2"), F.lit(0.05) + F.lit(0.1) * F.col("u3")
    target_first = F.when(F.col("u2") > 0.5, 0.9).otherwise(0.1)
    frame = frame.select(
        "decision_id",
        action.cast("int").alias("action_index"),
        F.when(action == 0, p_first).otherwise(F.lit(1.0) - p_first).alias("propensity"),
        F.when(F.col("u4") < F.when(action == 0, q0 + 0.02).otherwise(q1 - 0.01), 1.0).otherwise(0.0).alias("reward"),
        F.array(q0, q1).alias("q_hat"),
        F.array(target_first, F.lit(1.0) - target_first).alias("pi_target"),
    )
    frame.write.mode("overwrite").parquet(path)


def load_columns(path: str) -> tuple[dict[str, np.ndarray], float]:
    """The logged decisions as NumPy columns (pyarrow), and the seconds it took."""
    started = time.perf_counter()
    table = pq.read_table(path)
    columns = {name: table[name].to_numpy() for name in ("decision_id", "action_index", "propensity", "reward")}
    for name in ("q_hat", "pi_target"):
        columns[name] = table[name].combine_chunks().flatten().to_numpy().reshape(-1, 2)
    return columns, time.perf_counter() - started


def numpy_estimates(columns: dict[str, np.ndarray]) -> tuple[dict[str, float], float]:
    """IPS and DR with plain NumPy; returns (estimates, compute seconds)."""
    started = time.perf_counter()
    a, p, r = columns["action_index"], columns["propensity"], columns["reward"]
    q, pi = columns["q_hat"], columns["pi_target"]
    rows = np.arange(len(a))
    w = pi[rows, a] / p
    dm = (pi * q).sum(axis=1)
    estimates = {"ips": float(np.mean(w * r)), "dr": float(np.mean(dm + w * (r - q[rows, a])))}
    return estimates, time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=10_000_000)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="200,000 decisions")
    C.add_docs_option(parser)
    args = parser.parse_args(argv)
    n = 200_000 if args.quick else args.decisions
    with C.temp_dir("looper-bench-ope-") as scratch:
        spark, _ = C.spark_session(scratch, "bench-ope")
        path = str(scratch / "logged.parquet")
        started = time.perf_counter()
        generate(spark, n, path)
        print(f"generated {n:,} logged decisions in {time.perf_counter() - started:.1f} s")

        logged = spark.read.parquet(path)
        timings = []
        for attempt in range(2):
            started = time.perf_counter()
            result = ope.evaluate(logged, ["target"], n_bootstrap=args.bootstrap)
            timings.append(time.perf_counter() - started)
            print(f"spark ope.evaluate run {attempt + 1}: {timings[-1]:.1f} s")
        spark_s = min(timings)
        columns, load_s = load_columns(path)
        reference, numpy_s = numpy_estimates(columns)
        print(f"numpy: load {load_s:.1f} s, estimates {numpy_s:.2f} s")
        started = time.perf_counter()
        engine = ope.evaluate(columns, ["target"], n_bootstrap=args.bootstrap).policies["target"]
        engine_s = time.perf_counter() - started
        print(f"numpy engine ope.evaluate: {engine_s:.2f} s")
        target = result.policies["target"]
        rows, agree = [], True
        for name in ("ips", "dr"):
            got, want, ours = target.estimates[name], reference[name], engine.estimates[name]
            rel = max(abs(x - y) / abs(y) for x, y in [(got.value, want), (ours.value, want),
                                                       (ours.lower, got.lower), (ours.upper, got.upper)])
            agree &= rel <= TOLERANCE
            rows.append([name.upper(), f"{got.value:.12f}", f"{want:.12f}", f"{ours.value:.12f}", f"{rel:.1e}",
                         f"{got.lower:.5f} .. {got.upper:.5f}", f"{ours.lower:.5f} .. {ours.upper:.5f}"])
        headers = ["estimator", "spark", "numpy", "numpy engine", "largest relative difference",
                   "95% interval (spark)", "95% interval (numpy engine)"]
        print(C.table(headers, rows))
        print("estimates agree: " + ("OK" if agree else "MISMATCH"))
        ratio = spark_s / numpy_s
        summary = C.table(
            ["what", "wall time", "ratio to NumPy points"],
            [
                [f"Spark `ope.evaluate`: IPS, SNIPS, DM, DR + {args.bootstrap} bootstrap resamples "
                 f"(best of 2; first {timings[0]:.1f} s)", f"{spark_s:.1f} s", f"{ratio:.1f}x"],
                ["NumPy engine `ope.evaluate`: the same, on the loaded columns", f"{engine_s:.2f} s",
                 f"{engine_s / numpy_s:.1f}x"],
                ["NumPy IPS + DR points (after loading)", f"{numpy_s:.2f} s", "1.0x"],
                ["NumPy: loading the columns with pyarrow", f"{load_s:.1f} s", ""],
            ],
        )
        print(summary)
        spark.stop()
    if C.docs_wanted(args):
        body = (
            f"{n:,} logged decisions (2 actions, propensities 0.1-0.9), {C.machine()}.\n\n{summary}\n\n"
            + C.table(headers, rows)
            + f"\n\nEstimates agree to {TOLERANCE:g} relative: {'yes' if agree else 'NO'}. The bootstrap costs "
            "Spark no second pass: every decision is summed into one of 1,024 hash buckets and the "
            "resampling runs over the bucket sums on the driver, so the time is one aggregation over "
            "the logs. NumPy holds everything in one process's memory; Spark's figure is what scales "
            "out with the cluster. The NumPy engine sums the same buckets in the driver (what "
            "evaluate_models and tune_policy use, on their thousands of decisions)."
        )
        C.write_section("ope", "OPE: 200 bootstrap resamples over logged decisions vs NumPy", body)
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
