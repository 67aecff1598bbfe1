"""Benchmark off-policy evaluation (``looper_common.decision_science.ope``) against plain NumPy point estimates.

Generates logged decisions as NumPy columns (seeded): decision ids as the SDK makes
them, two actions, a behaviour policy with propensities between 0.1 and 0.9, a
reward model's ``q_hat`` per action, Bernoulli rewards and a target policy's
distribution. Then, on the same columns, alternating, best of ``--repeat``:

* the project: ``ope.evaluate`` (input checks; IPS, SNIPS, DM and DR; each decision
  hashed to one of 1,024 buckets; 200 bootstrap resamples of the bucket sums);
* the same call with the ids hashed beforehand (``id_hashes``, as policy tuning
  passes them), and the hashing alone;
* the baseline: the IPS and DR point estimates in plain NumPy. It does less: no
  input checks, no SNIPS or DM, no hashing, no intervals.

The point estimates must agree to 1e-9 relative (printed OK or MISMATCH). The ratios
are over the baseline's time.

    python bench/bench_ope.py              # 10,000,000 logged decisions
    python bench/bench_ope.py --quick      # 200,000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import _common as C
import numpy as np

from looper_common.contracts.ids import blueprint_tag, new_decision_ids
from looper_common.decision_science import ope

TOLERANCE = 1e-9


def generate(n: int, seed: int = 0) -> dict[str, object]:
    """``n`` logged decisions as the columns ``ope.evaluate`` takes."""
    rng = np.random.default_rng(seed)
    u = rng.random((5, n))
    p_first = 0.1 + 0.8 * u[0]
    action = (u[1] >= p_first).astype(np.int32)
    q = np.column_stack([0.05 + 0.3 * u[2], 0.05 + 0.1 * u[3]])
    target_first = np.where(u[2] > 0.5, 0.9, 0.1)
    stamps = (1_800_000_000_000 + np.arange(n) // 100).tolist()
    rands = rng.integers(0, 2**64, n, dtype=np.uint64).tolist()  # seeded ids: the same buckets every run
    return {
        "decision_id": np.array(new_decision_ids(blueprint_tag("bench_ope"), stamps, rands), dtype=object),
        "action_index": action,
        "propensity": np.where(action == 0, p_first, 1.0 - p_first),
        "reward": (u[4] < np.where(action == 0, q[:, 0] + 0.02, q[:, 1] - 0.01)).astype("float64"),
        "q_hat": q,
        "pi_target": np.column_stack([target_first, 1.0 - target_first]),
    }


def numpy_estimates(columns: dict[str, object]) -> dict[str, float]:
    """IPS and DR points with plain NumPy."""
    a, p, r = columns["action_index"], columns["propensity"], columns["reward"]
    q, pi = columns["q_hat"], columns["pi_target"]
    rows = np.arange(len(a))
    w = pi[rows, a] / p
    dm = (pi * q).sum(axis=1)
    return {"ips": float(np.mean(w * r)), "dr": float(np.mean(dm + w * (r - q[rows, a])))}


def timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    out = call()
    return out, time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=10_000_000)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs of each; the best counts")
    parser.add_argument("--quick", action="store_true", help="200,000 decisions")
    C.add_docs_option(parser)
    args = parser.parse_args(argv)
    n = 200_000 if args.quick else args.decisions
    columns, generate_s = timed(lambda: generate(n))
    print(f"generated {n:,} logged decisions in {generate_s:.1f} s")

    times: dict[str, list[float]] = {"numpy": [], "ope": [], "hash": [], "ope_hashed": []}
    for attempt in range(args.repeat):
        reference, seconds = timed(lambda: numpy_estimates(columns))
        times["numpy"].append(seconds)
        result, seconds = timed(lambda: ope.evaluate(columns, ["target"], n_bootstrap=args.bootstrap))
        times["ope"].append(seconds)
        hashes, seconds = timed(lambda: ope.decision_hashes(columns["decision_id"]))
        times["hash"].append(seconds)
        hashed, seconds = timed(lambda hashes=hashes: ope.evaluate(columns, ["target"], n_bootstrap=args.bootstrap,
                                                                   id_hashes=hashes))
        times["ope_hashed"].append(seconds)
        print(f"run {attempt + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    best = {k: min(v) for k, v in times.items()}

    target, rows, agree = result.policies["target"], [], True
    for name in ("ips", "dr"):
        got, want = target.estimates[name], reference[name]
        rel = abs(got.value - want) / abs(want)
        agree &= rel <= TOLERANCE and hashed.policies["target"].estimates[name] == got
        rows.append([name.upper(), f"{got.value:.12f}", f"{want:.12f}", f"{rel:.1e}",
                     f"{got.lower:.5f} .. {got.upper:.5f}"])
    headers = ["estimator", "ope.evaluate", "numpy", "relative difference", "95% interval (ope.evaluate)"]
    print(C.table(headers, rows))
    print("estimates agree: " + ("OK" if agree else "MISMATCH"))
    ratio = {k: f"{v / best['numpy']:.1f}x" for k, v in best.items()}
    summary = C.table(
        ["what", f"wall time (best of {args.repeat})", "ratio to NumPy points"],
        [
            [f"`ope.evaluate`: checks, IPS, SNIPS, DM, DR, bucket hashing + {args.bootstrap} bootstrap resamples",
             f"{best['ope']:.2f} s", ratio["ope"]],
            ["`ope.decision_hashes` alone (the ids' bucket hash)", f"{best['hash']:.2f} s", ratio["hash"]],
            ["`ope.evaluate` with the ids hashed beforehand (`id_hashes`)", f"{best['ope_hashed']:.2f} s",
             ratio["ope_hashed"]],
            ["NumPy IPS + DR points (no checks, no SNIPS/DM, no hashing, no intervals)", f"{best['numpy']:.2f} s",
             "1.0x"],
        ],
    )
    print(summary)
    if C.docs_wanted(args):
        body = (
            f"{n:,} logged decisions (2 actions, propensities 0.1-0.9, ids as the SDK makes them), in memory.\n\n"
            f"{summary}\n\n" + C.table(headers, rows)
            + f"\n\nPoint estimates agree to {TOLERANCE:g} relative: {'yes' if agree else 'NO'}. The baseline does "
            "less than the project (see the rows); the difference is the price of the checks, the two other "
            "estimators, the bucket hash (one BLAKE2b call per id) and the intervals: every decision is summed "
            "into one of 1,024 buckets and the resampling runs over the bucket sums, so the bootstrap costs "
            "no second pass over the decisions."
        )
        C.write_section("ope", "OPE: ope.evaluate with 200 bootstrap resamples vs NumPy point estimates", body)
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
