"""Off-policy evaluation: what a candidate policy would have earned on the logged traffic.

Every decision is logged with the probability of the action it took (``propensity``),
so the value of any other policy can be estimated from the logs of the one that ran
(the behaviour policy). Four estimators (``looper_common.decision_science.estimators``,
formulas and references there): IPS, SNIPS, DM and DR, with weights optionally
clipped at ``clip``. Diagnostics per policy: the effective sample size
``(Σ w)² / Σ w²`` of the unclipped weights, the largest weight and how many weights
were clipped.

Intervals: a bootstrap over hash buckets (``looper_common.decision_science.bootstrap``):
every decision goes to one of ``buckets`` buckets by a hash of its ``decision_id``
that is independent of the exploration draw, every estimator's terms are summed per
bucket, and the bootstrap resamples the bucket sums. Intervals are percentile
intervals; lifts of one policy over another are paired (the same resample for both).
``seed`` picks the bucket split and the resamples.

The input is a mapping of column name to NumPy column (``looper_common.decision_science.logged``
has the contract), what the jobs hold in the driver (``evaluate_models``,
``tune_policy``); it is evaluated in NumPy, with no SparkSession.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from looper_common.decision_science.bootstrap import (
    Interval,
    assign_buckets,
    cells,
    decision_hashes,
    interval,
    resample_counts,
)
from looper_common.decision_science.estimators import ALL_ESTIMATORS, Estimator, policy_rows
from looper_common.decision_science.logged import LoggedDecisions, OPEError, policy_column, read_logged

__all__ = [
    "DEFAULT_BUCKETS", "ESTIMATORS", "Interval", "OPEError", "OPEResult", "PolicyEstimate", "decision_hashes",
    "evaluate", "evaluate_by", "policy_column",
]

log = logging.getLogger(__name__)

ESTIMATORS = tuple(e.name for e in ALL_ESTIMATORS)
DEFAULT_BUCKETS = 1024


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


def evaluate(
    logged: Mapping[str, np.ndarray | Sequence], policies: Sequence[str], **options: Any
) -> OPEResult:
    """Estimate the value of each policy in ``policies`` on the ``logged`` columns (see the module doc).

    ``options`` are :func:`evaluate_by`'s: ``reward``, ``q_hat`` (None skips DM and DR),
    ``baseline`` (one of ``policies``; each other policy then also gets its lift over it,
    with a paired interval), ``clip``, ``n_bootstrap``, ``alpha``, ``buckets``, ``seed``
    and ``id_hashes`` (:func:`decision_hashes` of the ``decision_id`` column, computed
    once by a caller that evaluates the same decisions repeatedly).
    """
    results = evaluate_by(logged, None, policies, **options)
    if not results:
        raise OPEError("no logged decisions to evaluate on")
    return results[None]


def evaluate_by(
    logged: Mapping[str, np.ndarray | Sequence],
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

    One pass over the decisions for all groups; the result maps each value to its
    estimates, and is empty when there are no decisions.
    """
    if not policies:
        raise OPEError("no policy to evaluate")
    if baseline is not None and baseline not in policies:
        raise OPEError(f"baseline {baseline!r} is not among the evaluated policies {list(policies)}")
    if clip is not None and clip <= 0:
        raise OPEError(f"clip must be positive, got {clip}")
    decisions = read_logged(logged, by, policies, reward, q_hat)
    if decisions is None:
        return {}
    hashes = decision_hashes(decisions.decision_id) if id_hashes is None else np.asarray(id_hashes)
    if len(hashes) != decisions.n:
        raise OPEError(f"{len(hashes)} id_hashes for {decisions.n} logged decisions")
    estimators = [e for e in ALL_ESTIMATORS if q_hat is not None or not e.needs_q_hat]
    out = _evaluate_groups(decisions, assign_buckets(hashes, buckets, seed), buckets, list(policies), estimators,
                           baseline=baseline, clip=clip, n_bootstrap=n_bootstrap, alpha=alpha, seed=seed)
    for key, result in out.items():
        log.info("OPE%s on %d decisions (%d resamples): %s", "" if by is None else f" [{by}={key}]", result.n,
                 n_bootstrap, "; ".join(f"{p} {estimators[-1].name}={est.estimates[estimators[-1].name].value:.4f} "
                                        f"ess={est.ess:.0f}" for p, est in result.policies.items()))
    return out


@dataclass(frozen=True)
class _Diagnostics:
    """Per group: the sum and sum of squares of the unclipped weights, the largest, how many were clipped."""

    wsum: np.ndarray
    wsq: np.ndarray
    wmax: np.ndarray
    clipped: np.ndarray


def _diagnostics(raw_weight: np.ndarray, group: np.ndarray, groups: int, clip: float | None) -> _Diagnostics:
    wmax = np.full(groups, -np.inf)
    np.maximum.at(wmax, group, raw_weight)
    clipped = (np.bincount(group, weights=(raw_weight > clip).astype("float64"), minlength=groups)
               if clip is not None else np.zeros(groups))
    return _Diagnostics(
        wsum=np.bincount(group, weights=raw_weight, minlength=groups),
        wsq=np.bincount(group, weights=raw_weight * raw_weight, minlength=groups),
        wmax=wmax, clipped=clipped,
    )


def _evaluate_groups(
    decisions: LoggedDecisions, bucket: np.ndarray, buckets: int, policies: list[str], estimators: list[Estimator],
    *, baseline: str | None, clip: float | None, n_bootstrap: int, alpha: float, seed: int,
) -> dict[object, OPEResult]:
    """Every group's estimates: each estimator's terms summed per (group, bucket), then the bootstrap."""
    cell = cells(decisions.group, bucket, buckets)
    groups = len(decisions.group_keys)
    sums: dict[tuple[str, str], np.ndarray] = {("", "n"): cell.size.astype("float64")}
    diagnostics: dict[str, _Diagnostics] = {}
    for name in policies:
        rows = policy_rows(decisions.pi[name], decisions.q_hat, decisions.action, decisions.propensity,
                           decisions.reward, clip)
        for estimator in estimators:
            for term, values in estimator.terms(rows).items():
                sums.setdefault((name, term), cell.total(values))
        diagnostics[name] = _diagnostics(rows.raw_weight, decisions.group, groups, clip)
    out: dict[object, OPEResult] = {}
    for g in np.unique(cell.group):
        in_group = cell.group == g
        out[decisions.group_keys[g]] = _summarize(
            {key: values[in_group] for key, values in sums.items()},
            diagnostics, int(g), policies, estimators,
            baseline=baseline, n_bootstrap=n_bootstrap, alpha=alpha, seed=seed, clip=clip,
        )
    return out


def _summarize(
    sums: Mapping[tuple[str, str], np.ndarray], diagnostics: Mapping[str, _Diagnostics], g: int, policies: list[str],
    estimators: list[Estimator], *, baseline: str | None, n_bootstrap: int, alpha: float, seed: int,
    clip: float | None,
) -> OPEResult:
    """One group's point estimates from its bucket sums, and the bootstrap over its buckets."""
    keys = list(sums)
    matrix = np.column_stack([sums[k] for k in keys])  # (buckets, sums)
    replicas = resample_counts(len(matrix), n_bootstrap, seed) @ matrix  # (n_bootstrap, sums)
    totals = matrix.sum(axis=0)

    def of_policy(source: np.ndarray, name: str) -> dict[str, np.ndarray]:
        return {term: source[..., j] for j, (owner, term) in enumerate(keys) if owner in (name, "")}

    n = int(totals[keys.index(("", "n"))])
    results: dict[str, PolicyEstimate] = {}
    draws: dict[tuple[str, str], np.ndarray] = {}
    for name in policies:
        point, resampled = of_policy(totals, name), of_policy(replicas, name)
        estimates = {}
        for estimator in estimators:
            draws[name, estimator.name] = estimator.estimate(resampled)
            estimates[estimator.name] = interval(float(estimator.estimate(point)), draws[name, estimator.name],
                                                 alpha)
        d = diagnostics[name]
        wsum, wsq = float(d.wsum[g]), float(d.wsq[g])
        results[name] = PolicyEstimate(
            policy=name, n=n, estimates=estimates, ess=wsum * wsum / wsq if wsq > 0 else 0.0,
            max_weight=float(d.wmax[g]), clipped=int(d.clipped[g]),
        )
    lifts: dict[str, dict[str, Interval]] = {}
    if baseline is not None:
        for name in policies:
            if name != baseline:
                lifts[name] = {
                    e.name: interval(
                        results[name].estimates[e.name].value - results[baseline].estimates[e.name].value,
                        draws[name, e.name] - draws[baseline, e.name], alpha,
                    )
                    for e in estimators
                }
    return OPEResult(n=n, policies=results, baseline=baseline, lifts=lifts,
                     n_bootstrap=n_bootstrap, alpha=alpha, clip=clip)
