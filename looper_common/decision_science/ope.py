"""Off-policy evaluation: what a candidate policy would have earned on the logged traffic.

Every decision is logged with the probability of the action it took (``propensity``),
so the value of any other policy can be estimated from the logs of the one that ran
(the behaviour policy). Four estimators:

* IPS, inverse propensity scoring: ``mean(w_i r_i)`` with ``w_i = pi(a_i|x_i) / p_i``.
* SNIPS, self-normalized IPS: ``sum(w_i r_i) / sum(w_i)``.
* DM, direct method: ``mean(sum_a pi(a|x_i) q(x_i, a))`` with a reward model ``q``.
* DR, doubly robust: ``mean(sum_a pi(a|x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)))``.

Weights may be clipped at ``clip`` (``w_i = min(w_i, clip)``; biased, lower variance).
Diagnostics: the effective sample size ``(sum w)^2 / sum w^2``, the largest weight and
how many weights were clipped.

Confidence intervals come from a bootstrap over hash buckets: every decision goes to
one of ``buckets`` buckets by a hash of its id, each bucket is summed, and the
bootstrap resamples the bucket sums with replacement. Bucket assignment is a random
i.i.d. split, so the bucket sums are exchangeable and resampling them gives the
sampling distribution of every estimator above (all are ratios of sums), while the
logs are read once however many resamples are drawn. Intervals are percentile
intervals; lifts of one policy over another are paired (same resample for both).

Two engines compute the bucket sums; everything after them is shared. A Spark
DataFrame is summed in one Spark aggregation, which scales with the logs. A mapping of
NumPy columns (what the jobs already hold in the driver: ``evaluate_models``,
``tune_policy``) is summed with NumPy, with no SparkSession: milliseconds where a cold
Spark driver costs seconds. Both put a decision in the bucket
``pmod(xxhash64(decision_id, seed), buckets)`` (``looper_common.decision_science.spark_hash`` is
Spark's hash in NumPy), so the same decisions give the same estimates and intervals
on either engine, up to the order of floating-point additions.

Input contract (one row per logged decision): ``decision_id`` (string), ``action_index``
(int, position of the logged action in the blueprint's actions), ``propensity``
(double in (0, 1]), the reward column, optionally ``q_hat`` (array of the reward
model's prediction per action, needed for DM and DR), and one array column per
candidate policy with its probability of every action (``pi_<name>``). As NumPy
columns the arrays are 2-D, (decisions, actions); a missing value is None or NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from looper_common.decision_science import spark_hash

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


def _summed_parts(q_hat: str | None) -> tuple[str, ...]:
    """The per-policy sums the bootstrap resamples (the estimators are ratios of them)."""
    return ("ips", "w", "dm", "dr") if q_hat is not None else ("ips", "w")


@dataclass(frozen=True)
class _BucketSums:
    """What an engine hands to :func:`_summarize`: per group, each sum per non-empty bucket.

    Buckets are in ascending order in both engines: the bootstrap draws a count per
    position, so the same order is what makes the two engines' intervals the same.
    """

    actions: int
    bad: int  # decisions that fail the input contract (no groups are summed when there are any)
    groups: dict[object, dict[str, np.ndarray]]


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


def _spark_sums(
    logged: DataFrame, by: str | None, policies: Sequence[str], reward: str, q_hat: str | None,
    clip: float | None, buckets: int, seed: int,
) -> _BucketSums | None:
    """The bucket sums in one Spark aggregation; None when there are no rows."""
    first = logged.select(F.size(policy_column(policies[0])).alias("k")).first()
    if first is None:
        return None
    actions = int(first["k"])

    bucket = F.pmod(F.xxhash64(F.col("decision_id"), F.lit(seed)), F.lit(buckets)).alias("bucket")
    bad = (
        F.col("propensity").isNull() | (F.col("propensity") <= 0) | (F.col("propensity") > 1)
        | F.col("action_index").isNull() | F.col(reward).isNull()
        | (F.col("action_index") < 0) | (F.col("action_index") >= actions)
    )
    for array in [*map(policy_column, policies), *([q_hat] if q_hat is not None else [])]:
        bad = bad | F.col(array).isNull() | (F.size(array) != actions)
    sums: dict[str, Column] = {"n": F.count(F.lit(1))}
    for i, name in enumerate(policies):
        cols = _per_row(name, reward, q_hat, clip, actions)
        for part in _summed_parts(q_hat):
            sums[f"{part}_{i}"] = F.sum(cols[part])
        sums[f"wsum_{i}"] = F.sum(cols["w_raw"])
        sums[f"wsq_{i}"] = F.sum(cols["w_raw"] * cols["w_raw"])
        sums[f"wmax_{i}"] = F.max(cols["w_raw"])
        sums[f"clipped_{i}"] = (F.sum((cols["w_raw"] > F.lit(float(clip))).cast("long")) if clip is not None
                                else F.lit(0))
    keys = [bucket] if by is None else [F.col(by).alias("_group"), bucket]
    rows = logged.groupBy(*keys).agg(F.sum(bad.cast("long")).alias("bad"),
                                     *(column.alias(c) for c, column in sums.items())).collect()
    groups: dict[object, list] = {}
    # ascending buckets, as in the NumPy engine: Spark's order depends on its partitioning
    for row in sorted(rows, key=lambda r: r["bucket"]):
        groups.setdefault(None if by is None else row["_group"], []).append(row)
    return _BucketSums(
        actions, sum(int(r["bad"] or 0) for r in rows),
        {key: {c: np.array([float(r[c] or 0.0) for r in group]) for c in sums} for key, group in groups.items()},
    )


def decision_hashes(decision_id: np.ndarray | Sequence[str | None]) -> np.ndarray:
    """The seed-independent part of each decision's bucket: Spark's ``xxhash64`` of its id.

    Hashing 10,000 ids takes about 6 ms, longer than the rest of a NumPy evaluation
    without bootstrap: a caller that evaluates the same decisions many times (policy
    tuning) hashes them once and passes the result as ``id_hashes``.
    """
    try:
        return spark_hash.hash_strings(decision_id)
    except AttributeError:  # no .encode: not a string
        raise OPEError(f"decision_id must be strings, got {np.asarray(decision_id).dtype}") from None


def _numpy_per_row(
    pi: np.ndarray, q: np.ndarray | None, action: np.ndarray, propensity: np.ndarray, reward: np.ndarray,
    clip: float | None,
) -> dict[str, np.ndarray]:
    """:func:`_per_row` in NumPy, operation for operation, so that every row's values are Spark's."""
    rows = np.arange(len(action))
    weight = pi[rows, action] / propensity
    clipped = np.minimum(weight, float(clip)) if clip is not None else weight
    cols = {"w_raw": weight, "w": clipped, "ips": clipped * reward}
    if q is not None:
        dm = pi[:, 0] * q[:, 0]
        for j in range(1, pi.shape[1]):
            dm = dm + pi[:, j] * q[:, j]
        cols["dm"] = dm
        cols["dr"] = dm + clipped * (reward - q[rows, action])
    return cols


def _numpy_sums(
    columns: Mapping[str, np.ndarray | Sequence], by: str | None, policies: Sequence[str], reward: str,
    q_hat: str | None, clip: float | None, buckets: int, seed: int, id_hashes: np.ndarray | None,
) -> _BucketSums | None:
    """The same bucket sums as :func:`_spark_sums`, from NumPy columns; None when there are no rows."""
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise OPEError(f"the logged decisions' columns differ in length: {lengths}")
    n = lengths["decision_id"]
    if n == 0:
        return None
    arrays: dict[str, np.ndarray] = {}
    for name in [*map(policy_column, policies), *([q_hat] if q_hat is not None else [])]:
        try:
            array = np.asarray(columns[name], dtype="float64")
        except ValueError:  # rows of different lengths
            array = None
        if array is None or array.ndim != 2:
            raise OPEError(f"column {name!r} must be a 2-D array (decisions, actions), one row per decision")
        arrays[name] = array
    actions = arrays[policy_column(policies[0])].shape[1]
    # None becomes NaN: the missing value of a float column (as logged_frame's nulls)
    propensity, r, action = (np.asarray(columns[c], dtype="float64") for c in ("propensity", reward, "action_index"))
    bad = (
        np.isnan(propensity) | (propensity <= 0) | (propensity > 1) | np.isnan(action) | np.isnan(r)
        | (action < 0) | (action >= actions)
    )
    if any(array.shape[1] != actions for array in arrays.values()):
        bad[:] = True
    if bad.any():
        return _BucketSums(actions, int(bad.sum()), {})

    hashes = decision_hashes(columns["decision_id"]) if id_hashes is None else np.asarray(id_hashes)
    if len(hashes) != n:
        raise OPEError(f"{len(hashes)} id_hashes for {n} logged decisions")
    bucket = spark_hash.as_signed(spark_hash.hash_literal(seed, hashes)) % buckets
    if by is None:
        codes, keys = np.zeros(n, dtype=np.int64), [None]
    else:
        codes, uniques = pd.factorize(np.asarray(columns[by]), use_na_sentinel=False)
        keys = [None if pd.isna(k) else k for k in uniques.tolist()]
    cells, cell = np.unique(codes * buckets + bucket, return_inverse=True)  # ascending: by group, then bucket
    counts = np.bincount(cell, minlength=len(cells))
    by_cell = np.argsort(cell, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(cell, weights=values, minlength=len(cells))  # adds in row order, as Spark does

    sums: dict[str, np.ndarray] = {"n": counts.astype("float64")}
    index = action.astype(np.int64)
    for i, name in enumerate(policies):
        cols = _numpy_per_row(arrays[policy_column(name)], arrays.get(q_hat), index, propensity, r, clip)
        for part in _summed_parts(q_hat):
            sums[f"{part}_{i}"] = total(cols[part])
        sums[f"wsum_{i}"] = total(cols["w_raw"])
        sums[f"wsq_{i}"] = total(cols["w_raw"] * cols["w_raw"])
        sums[f"wmax_{i}"] = np.maximum.reduceat(cols["w_raw"][by_cell], starts)
        sums[f"clipped_{i}"] = (total((cols["w_raw"] > clip).astype("float64")) if clip is not None
                                else np.zeros(len(cells)))
    group_of_cell = cells // buckets
    return _BucketSums(actions, 0, {
        keys[g]: {c: values[group_of_cell == g] for c, values in sums.items()} for g in np.unique(group_of_cell)
    })


def _check(columns: Sequence[str], policies: Sequence[str], reward: str, q_hat: str | None) -> None:
    needed = ["decision_id", "action_index", "propensity", reward, *map(policy_column, policies)]
    if q_hat is not None:
        needed.append(q_hat)
    missing = [c for c in needed if c not in columns]
    if missing:
        raise OPEError(f"logged decisions lack column(s) {missing} (have {list(columns)})")


def evaluate(
    logged: DataFrame | Mapping[str, np.ndarray | Sequence],
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
    id_hashes: np.ndarray | None = None,
) -> OPEResult:
    """Estimate the value of each policy in ``policies`` on ``logged`` (see the module doc).

    ``logged`` is a Spark DataFrame or a mapping of column name to NumPy column.
    ``baseline`` names one of ``policies``; each other policy then also gets its lift
    over it, with a paired interval. ``q_hat=None`` skips DM and DR. ``id_hashes``
    (NumPy columns only) is :func:`decision_hashes` of the ``decision_id`` column,
    computed once by a caller that evaluates the same decisions repeatedly.
    """
    results = evaluate_by(
        logged, None, policies, reward=reward, q_hat=q_hat, baseline=baseline, clip=clip,
        n_bootstrap=n_bootstrap, alpha=alpha, buckets=buckets, seed=seed, id_hashes=id_hashes,
    )
    if not results:
        raise OPEError("no logged decisions to evaluate on")
    return results[None]


def evaluate_by(
    logged: DataFrame | Mapping[str, np.ndarray | Sequence],
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
    id_hashes: np.ndarray | None = None,
) -> dict[object, OPEResult]:
    """:func:`evaluate` separately for every value of the column ``by`` (a segment, a day...).

    One pass over the logs for all groups; the result maps each value to its estimates.
    """
    if not policies:
        raise OPEError("no policy to evaluate")
    if baseline is not None and baseline not in policies:
        raise OPEError(f"baseline {baseline!r} is not among the evaluated policies {list(policies)}")
    if clip is not None and clip <= 0:
        raise OPEError(f"clip must be positive, got {clip}")
    on_numpy = isinstance(logged, Mapping)
    columns = list(logged) if on_numpy else logged.columns
    if by is not None and by not in columns:
        raise OPEError(f"no column {by!r} to group the logged decisions by (have {columns})")
    _check(columns, policies, reward, q_hat)
    if on_numpy:
        sums = _numpy_sums(logged, by, policies, reward, q_hat, clip, buckets, seed, id_hashes)
    elif id_hashes is not None:
        raise OPEError("id_hashes are for NumPy columns: Spark hashes the ids of a DataFrame itself")
    else:
        sums = _spark_sums(logged, by, policies, reward, q_hat, clip, buckets, seed)
    if sums is None:
        return {}
    if sums.bad:
        raise OPEError(
            f"{sums.bad} logged decision(s) have a propensity outside (0, 1], a null {reward!r}, an "
            f"action_index outside 0..{sums.actions - 1} or a probability/q_hat array that is not of "
            f"{sums.actions} actions; fix or filter them before evaluating"
        )
    estimators = [e for e in ESTIMATORS if q_hat is not None or e not in ("dm", "dr")]
    out = {
        key: _summarize(group, list(policies), _summed_parts(q_hat), estimators, baseline, n_bootstrap, alpha,
                        seed, clip)
        for key, group in sums.groups.items()
    }
    for key, result in out.items():
        log.info("OPE%s on %d decisions (%d buckets, %d resamples): %s",
                 "" if by is None else f" [{by}={key}]", result.n, len(sums.groups[key]["n"]), n_bootstrap,
                 "; ".join(f"{p} {e}={est.estimates[e].value:.4f} ess={est.ess:.0f}"
                           for p, est in result.policies.items() for e in estimators[-1:]))
    return out


def _summarize(
    sums: Mapping[str, np.ndarray], policies: list[str], parts: Sequence[str], estimators: list[str],
    baseline: str | None, n_bootstrap: int, alpha: float, seed: int, clip: float | None,
) -> OPEResult:
    """Point estimates from the bucket sums, and the bootstrap over buckets."""
    sum_names = ["n", *(f"{part}_{i}" for i in range(len(policies)) for part in parts)]
    matrix = np.column_stack([sums[c] for c in sum_names])
    column = {c: j for j, c in enumerate(sum_names)}
    n = int(sums["n"].sum())
    buckets = len(matrix)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(buckets, np.full(buckets, 1.0 / buckets), size=n_bootstrap)
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
        wsum, wsq = float(sums[f"wsum_{i}"].sum()), float(sums[f"wsq_{i}"].sum())
        results[name] = PolicyEstimate(
            policy=name, n=n, estimates=estimates,
            ess=wsum * wsum / wsq if wsq > 0 else 0.0,
            max_weight=float(sums[f"wmax_{i}"].max()),
            clipped=int(sums[f"clipped_{i}"].sum()),
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
    data = {}
    for name, values in columns.items():
        array = np.asarray(values)
        data[name] = list(array.astype("float64")) if array.ndim == 2 else array
    frame = pd.DataFrame(data)
    if "action_index" in frame:
        frame["action_index"] = frame["action_index"].astype("int32")
    return spark.createDataFrame(frame)
