"""Off-policy evaluation: what a candidate policy would have earned on the logged traffic.

Every decision is logged with the probability of the action it took (``propensity``),
so the value of any other policy can be estimated from the logs of the one that ran
(the behaviour policy). Four estimators, all computed in one Spark aggregation so
they scale with the logs:

* IPS, inverse propensity scoring: ``mean(w_i r_i)`` with ``w_i = pi(a_i|x_i) / p_i``.
* SNIPS, self-normalized IPS: ``sum(w_i r_i) / sum(w_i)``.
* DM, direct method: ``mean(sum_a pi(a|x_i) q(x_i, a))`` with a reward model ``q``.
* DR, doubly robust: ``mean(sum_a pi(a|x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)))``.

Weights may be clipped at ``clip`` (``w_i = min(w_i, clip)``; biased, lower variance).
Diagnostics: the effective sample size ``(sum w)^2 / sum w^2``, the largest weight and
how many weights were clipped.

Confidence intervals come from a bootstrap over hash buckets: every decision goes to
one of ``buckets`` buckets by a hash of its id, Spark sums each bucket, and the
bootstrap resamples buckets with replacement on the driver. Bucket assignment is a
random i.i.d. split, so the bucket sums are exchangeable and resampling them gives the
sampling distribution of every estimator above (all are ratios of sums), while Spark
reads the logs once however many resamples are drawn. Intervals are percentile
intervals; lifts of one policy over another are paired (same resample for both).

Input contract (one row per logged decision): ``decision_id`` (string), ``action_index``
(int, position of the logged action in the blueprint's actions), ``propensity``
(double in (0, 1]), the reward column, optionally ``q_hat`` (array of the reward
model's prediction per action, needed for DM and DR), and one array column per
candidate policy with its probability of every action (``pi_<name>``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

ESTIMATORS = ("ips", "snips", "dm", "dr")
DEFAULT_BUCKETS = 1024


class OPEError(ValueError):
    """The logged data cannot be evaluated (bad column, out-of-range propensity...)."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval and standard error."""

    value: float
    lower: float
    upper: float
    std_error: float

    def covers(self, truth: float) -> bool:
        return self.lower <= truth <= self.upper


@dataclass(frozen=True)
class PolicyEstimate:
    """Every estimator's interval for one policy, and its weight diagnostics."""

    policy: str
    n: int
    estimates: dict[str, Interval]
    ess: float  # effective sample size of the (unclipped) importance weights
    max_weight: float
    clipped: int  # decisions whose weight exceeded the clip

    def metrics(self, prefix: str) -> dict[str, float]:
        """Flat metric names for MLflow: ``<prefix>.<estimator>`` and its bounds, diagnostics."""
        out: dict[str, float] = {}
        for name, est in self.estimates.items():
            out[f"{prefix}.{name}"] = est.value
            out[f"{prefix}.{name}_lower"] = est.lower
            out[f"{prefix}.{name}_upper"] = est.upper
        out[f"{prefix}.ess"] = self.ess
        out[f"{prefix}.max_weight"] = self.max_weight
        out[f"{prefix}.clipped"] = float(self.clipped)
        return out


@dataclass(frozen=True)
class OPEResult:
    """Estimates of every evaluated policy, and lifts of each over the baseline policy."""

    n: int
    policies: dict[str, PolicyEstimate]
    baseline: str | None = None
    lifts: dict[str, dict[str, Interval]] = field(default_factory=dict)  # policy -> estimator -> lift
    n_bootstrap: int = 0
    alpha: float = 0.05
    clip: float | None = None

    def table(self) -> list[dict[str, object]]:
        """One row per policy and estimator (for reports and logs)."""
        rows: list[dict[str, object]] = []
        for name, est in self.policies.items():
            for estimator, iv in est.estimates.items():
                lift = self.lifts.get(name, {}).get(estimator)
                rows.append({
                    "policy": name, "estimator": estimator, "value": iv.value, "lower": iv.lower,
                    "upper": iv.upper, "std_error": iv.std_error,
                    "lift": None if lift is None else lift.value,
                    "lift_lower": None if lift is None else lift.lower,
                    "lift_upper": None if lift is None else lift.upper,
                    "ess": est.ess, "max_weight": est.max_weight,
                })
        return rows


def policy_column(name: str) -> str:
    return f"pi_{name}"


def _per_row(
    name: str, reward: str, q_hat: str | None, clip: float | None, actions: int
) -> dict[str, Column]:
    # plain indexing (no higher-order functions): Spark compiles these into its generated code
    pi = F.col(policy_column(name))
    weight = F.try_divide(F.element_at(pi, F.col("action_index") + 1), F.col("propensity"))
    clipped = F.least(weight, F.lit(float(clip))) if clip is not None else weight
    r = F.col(reward).cast("double")
    cols = {"w_raw": weight, "w": clipped, "ips": clipped * r}
    if q_hat is not None:
        q = F.col(q_hat)
        dm = sum((pi.getItem(j) * q.getItem(j) for j in range(1, actions)), pi.getItem(0) * q.getItem(0))
        q_logged = F.element_at(q, F.col("action_index") + 1)
        cols["dm"] = dm
        cols["dr"] = dm + clipped * (r - q_logged)
    return cols


def _check(logged: DataFrame, policies: Sequence[str], reward: str, q_hat: str | None) -> None:
    needed = ["decision_id", "action_index", "propensity", reward, *map(policy_column, policies)]
    if q_hat is not None:
        needed.append(q_hat)
    missing = [c for c in needed if c not in logged.columns]
    if missing:
        raise OPEError(f"logged decisions lack column(s) {missing} (have {logged.columns})")


def evaluate(
    logged: DataFrame,
    policies: Sequence[str],
    *,
    reward: str = "reward",
    q_hat: str | None = "q_hat",
    baseline: str | None = None,
    clip: float | None = None,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    buckets: int = DEFAULT_BUCKETS,
    seed: int = 0,
) -> OPEResult:
    """Estimate the value of each policy in ``policies`` on ``logged`` (see the module doc).

    ``baseline`` names one of ``policies``; each other policy then also gets its lift
    over it, with a paired interval. ``q_hat=None`` skips DM and DR.
    """
    results = evaluate_by(
        logged, None, policies, reward=reward, q_hat=q_hat, baseline=baseline, clip=clip,
        n_bootstrap=n_bootstrap, alpha=alpha, buckets=buckets, seed=seed,
    )
    if not results:
        raise OPEError("no logged decisions to evaluate on")
    return results[None]


def evaluate_by(
    logged: DataFrame,
    by: str | None,
    policies: Sequence[str],
    *,
    reward: str = "reward",
    q_hat: str | None = "q_hat",
    baseline: str | None = None,
    clip: float | None = None,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    buckets: int = DEFAULT_BUCKETS,
    seed: int = 0,
) -> dict[object, OPEResult]:
    """:func:`evaluate` separately for every value of the column ``by`` (a segment, a day...).

    One Spark aggregation for all groups; the result maps each value to its estimates.
    """
    if not policies:
        raise OPEError("no policy to evaluate")
    if baseline is not None and baseline not in policies:
        raise OPEError(f"baseline {baseline!r} is not among the evaluated policies {list(policies)}")
    if clip is not None and clip <= 0:
        raise OPEError(f"clip must be positive, got {clip}")
    if by is not None and by not in logged.columns:
        raise OPEError(f"no column {by!r} to group the logged decisions by (have {logged.columns})")
    _check(logged, policies, reward, q_hat)
    estimators = [e for e in ESTIMATORS if q_hat is not None or e not in ("dm", "dr")]
    first = logged.select(F.size(policy_column(policies[0])).alias("k")).first()
    if first is None:
        return {}
    actions = int(first["k"])

    bucket = F.pmod(F.xxhash64(F.col("decision_id"), F.lit(seed)), F.lit(buckets)).alias("bucket")
    bad = (
        F.col("propensity").isNull() | (F.col("propensity") <= 0) | (F.col("propensity") > 1)
        | F.col("action_index").isNull() | F.col(reward).isNull()
        | (F.col("action_index") < 0) | (F.col("action_index") >= actions)
    )
    for array in [*map(policy_column, policies), *([q_hat] if q_hat is not None else [])]:
        bad = bad | F.col(array).isNull() | (F.size(array) != actions)
    sums: list[Column] = [F.count(F.lit(1)).alias("n"), F.sum(bad.cast("long")).alias("bad")]
    diagnostics: list[Column] = []
    sum_names: list[str] = ["n"]
    for i, name in enumerate(policies):
        cols = _per_row(name, reward, q_hat, clip, actions)
        for part in ("ips", "w", "dm", "dr") if q_hat is not None else ("ips", "w"):
            sum_names.append(f"{part}_{i}")
            sums.append(F.sum(cols[part]).alias(f"{part}_{i}"))
        diagnostics += [
            F.sum(cols["w_raw"]).alias(f"wsum_{i}"),
            F.sum(cols["w_raw"] * cols["w_raw"]).alias(f"wsq_{i}"),
            F.max(cols["w_raw"]).alias(f"wmax_{i}"),
            (F.sum((cols["w_raw"] > F.lit(float(clip))).cast("long")) if clip is not None else F.lit(0))
            .alias(f"clipped_{i}"),
        ]
    keys = [bucket] if by is None else [F.col(by).alias("_group"), bucket]
    rows = logged.groupBy(*keys).agg(*sums, *diagnostics).collect()
    bad_rows = sum(int(r["bad"] or 0) for r in rows)
    if bad_rows:
        raise OPEError(
            f"{bad_rows} logged decision(s) have a propensity outside (0, 1], a null {reward!r}, an "
            f"action_index outside 0..{actions - 1} or a probability/q_hat array that is not of "
            f"{actions} actions; fix or filter them before evaluating"
        )
    groups: dict[object, list] = {}
    for row in rows:
        groups.setdefault(None if by is None else row["_group"], []).append(row)
    out = {
        key: _summarize(group, list(policies), sum_names, estimators, baseline, n_bootstrap, alpha, seed, clip)
        for key, group in groups.items()
    }
    for key, result in out.items():
        log.info("OPE%s on %d decisions (%d buckets, %d resamples): %s",
                 "" if by is None else f" [{by}={key}]", result.n, len(groups[key]), n_bootstrap,
                 "; ".join(f"{p} {e}={est.estimates[e].value:.4f} ess={est.ess:.0f}"
                           for p, est in result.policies.items() for e in estimators[-1:]))
    return out


def _summarize(
    rows: list, policies: list[str], sum_names: list[str], estimators: list[str], baseline: str | None,
    n_bootstrap: int, alpha: float, seed: int, clip: float | None,
) -> OPEResult:
    """Point estimates from the bucket sums, and the bootstrap over buckets."""
    matrix = np.array([[float(r[c] or 0.0) for c in sum_names] for r in rows], dtype="float64")
    column = {c: j for j, c in enumerate(sum_names)}
    n = int(matrix[:, column["n"]].sum())
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(rows), np.full(len(rows), 1.0 / len(rows)), size=n_bootstrap)
    replicas = counts @ matrix  # (n_bootstrap, sums)
    totals = matrix.sum(axis=0)

    def point(source: np.ndarray, i: int, estimator: str) -> np.ndarray:
        if estimator == "snips":
            denominator = source[..., column[f"w_{i}"]]
            return np.divide(source[..., column[f"ips_{i}"]], denominator,
                             out=np.full_like(denominator, np.nan), where=denominator != 0)
        return source[..., column[f"{estimator}_{i}"]] / source[..., column["n"]]

    results: dict[str, PolicyEstimate] = {}
    draws: dict[tuple[str, str], np.ndarray] = {}
    for i, name in enumerate(policies):
        estimates = {}
        for estimator in estimators:
            draws[name, estimator] = point(replicas, i, estimator)
            estimates[estimator] = _interval(float(point(totals, i, estimator)), draws[name, estimator], alpha)
        wsum = sum(float(r[f"wsum_{i}"] or 0.0) for r in rows)
        wsq = sum(float(r[f"wsq_{i}"] or 0.0) for r in rows)
        results[name] = PolicyEstimate(
            policy=name, n=n, estimates=estimates,
            ess=wsum * wsum / wsq if wsq > 0 else 0.0,
            max_weight=max(float(r[f"wmax_{i}"] or 0.0) for r in rows),
            clipped=sum(int(r[f"clipped_{i}"] or 0) for r in rows),
        )
    lifts: dict[str, dict[str, Interval]] = {}
    if baseline is not None:
        for name in policies:
            if name != baseline:
                lifts[name] = {
                    e: _interval(
                        results[name].estimates[e].value - results[baseline].estimates[e].value,
                        draws[name, e] - draws[baseline, e], alpha,
                    )
                    for e in estimators
                }
    return OPEResult(n=n, policies=results, baseline=baseline, lifts=lifts,
                     n_bootstrap=n_bootstrap, alpha=alpha, clip=clip)


def _interval(value: float, replicas: np.ndarray, alpha: float) -> Interval:
    finite = replicas[np.isfinite(replicas)]
    if finite.size == 0:
        return Interval(value, float("nan"), float("nan"), float("nan"))
    lower, upper = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return Interval(value, float(lower), float(upper), float(finite.std(ddof=1)) if finite.size > 1 else 0.0)


def logged_frame(
    spark, columns: Mapping[str, np.ndarray | Sequence], *, num_slices: int | None = None
) -> DataFrame:
    """A Spark DataFrame of logged decisions from NumPy columns (2-D arrays become array columns)."""
    import pandas as pd

    data = {}
    for name, values in columns.items():
        array = np.asarray(values)
        data[name] = list(array.astype("float64")) if array.ndim == 2 else array
    frame = pd.DataFrame(data)
    if "action_index" in frame:
        frame["action_index"] = frame["action_index"].astype("int32")
    return spark.createDataFrame(frame)
