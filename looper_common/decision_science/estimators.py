"""Off-policy estimators, one small dataclass each: the per-decision terms it sums and its value from the sums.

Notation (one logged decision ``i`` of ``n``): context ``x_i``, logged action ``a_i``
with propensity ``p_i``, reward ``r_i``; the evaluated policy ``π``; the importance
weight ``w_i = π(a_i|x_i) / p_i``, clipped to ``min(w_i, clip)`` when a clip is set
(Strehl, Langford, Li and Kakade, "Learning from logged implicit exploration data",
NeurIPS 2010: biased, lower variance); a reward model ``q̂(x, a)``.

Every estimator is a ratio of sums over decisions, so :meth:`terms` gives the
per-decision values to sum and :meth:`estimate` the value from their sums (``n`` is
the number of decisions summed). The same :meth:`estimate` turns the full sums into
the point estimate and the resampled bucket sums into bootstrap replicas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class PolicyRows:
    """One evaluated policy on the logged decisions: what the estimators' terms are made of."""

    pi: np.ndarray  # (decisions, actions): the policy's probability of every action
    q_hat: np.ndarray | None  # (decisions, actions): the reward model's prediction, if any
    action: np.ndarray  # the logged action's index
    reward: np.ndarray
    raw_weight: np.ndarray  # π(a_i|x_i) / p_i
    weight: np.ndarray  # raw_weight, clipped when a clip is set
    direct: np.ndarray | None  # Σ_a π(a|x_i) q̂(x_i, a), with a reward model


def policy_rows(
    pi: np.ndarray, q_hat: np.ndarray | None, action: np.ndarray, propensity: np.ndarray, reward: np.ndarray,
    clip: float | None,
) -> PolicyRows:
    """The importance weights of ``pi`` on the logged decisions, and the columns the estimators read."""
    raw = pi[np.arange(len(action)), action] / propensity
    weight = np.minimum(raw, float(clip)) if clip is not None else raw
    direct = (pi * q_hat).sum(axis=1) if q_hat is not None else None
    return PolicyRows(pi=pi, q_hat=q_hat, action=action, reward=reward, raw_weight=raw, weight=weight, direct=direct)


class Estimator(Protocol):
    name: str
    needs_q_hat: bool

    def terms(self, rows: PolicyRows) -> dict[str, np.ndarray]: ...

    def estimate(self, sums: Mapping[str, np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class InverseProbabilityWeighting:
    """IPS: ``V = (1/n) Σ_i w_i r_i``.

    Unbiased when the propensities are right and the logging policy gives every
    action ``π`` takes a positive probability; the variance grows with the weights.
    Reference: Horvitz and Thompson, "A generalization of sampling without replacement
    from a finite universe", JASA 1952; Precup, Sutton and Singh, "Eligibility traces
    for off-policy policy evaluation", ICML 2000.
    """

    name: str = "ips"
    needs_q_hat: bool = False

    def terms(self, rows: PolicyRows) -> dict[str, np.ndarray]:
        return {"wr": rows.weight * rows.reward}

    def estimate(self, sums: Mapping[str, np.ndarray]) -> np.ndarray:
        return sums["wr"] / sums["n"]


@dataclass(frozen=True)
class SelfNormalizedInverseProbabilityWeighting:
    """SNIPS: ``V = Σ_i w_i r_i / Σ_i w_i`` (NaN when every weight is 0).

    Small bias, much less variance than IPS, and invariant to adding a constant to the
    rewards. Reference: Swaminathan and Joachims, "The self-normalized estimator for
    counterfactual learning", NeurIPS 2015.
    """

    name: str = "snips"
    needs_q_hat: bool = False

    def terms(self, rows: PolicyRows) -> dict[str, np.ndarray]:
        return {"wr": rows.weight * rows.reward, "w": rows.weight}

    def estimate(self, sums: Mapping[str, np.ndarray]) -> np.ndarray:
        denominator = np.asarray(sums["w"], dtype="float64")
        return np.divide(sums["wr"], denominator, out=np.full_like(denominator, np.nan), where=denominator != 0)


@dataclass(frozen=True)
class DirectMethod:
    """DM: ``V = (1/n) Σ_i Σ_a π(a|x_i) q̂(x_i, a)``.

    No weights, so no variance from them; as good as the reward model (its bias is the
    estimate's). Reference: Beygelzimer and Langford, "The offset tree for learning
    with partial labels", KDD 2009.
    """

    name: str = "dm"
    needs_q_hat: bool = True

    def terms(self, rows: PolicyRows) -> dict[str, np.ndarray]:
        assert rows.direct is not None
        return {"dm": rows.direct}

    def estimate(self, sums: Mapping[str, np.ndarray]) -> np.ndarray:
        return sums["dm"] / sums["n"]


@dataclass(frozen=True)
class DoublyRobust:
    """DR: ``V = (1/n) Σ_i [Σ_a π(a|x_i) q̂(x_i, a) + w_i (r_i - q̂(x_i, a_i))]``.

    The direct method corrected by the importance-weighted residual of the reward
    model: unbiased if either the propensities or ``q̂`` are right. Reference: Dudík,
    Langford and Li, "Doubly robust policy evaluation and learning", ICML 2011.
    """

    name: str = "dr"
    needs_q_hat: bool = True

    def terms(self, rows: PolicyRows) -> dict[str, np.ndarray]:
        assert rows.q_hat is not None and rows.direct is not None
        logged_q = rows.q_hat[np.arange(len(rows.action)), rows.action]
        return {"dr": rows.direct + rows.weight * (rows.reward - logged_q)}

    def estimate(self, sums: Mapping[str, np.ndarray]) -> np.ndarray:
        return sums["dr"] / sums["n"]


ALL_ESTIMATORS: tuple[Estimator, ...] = (
    InverseProbabilityWeighting(), SelfNormalizedInverseProbabilityWeighting(), DirectMethod(), DoublyRobust(),
)
