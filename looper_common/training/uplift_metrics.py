"""How well an uplift score ranks units, from logged randomized decisions; PEHE on the simulator.

Units are sorted by predicted uplift, highest first. With W the treatment indicator,
Y the outcome and e = P(treatment | x) the logged propensity, each unit contributes
the inverse-propensity-weighted (Horvitz-Thompson) difference

    c_i = W_i Y_i / e_i - (1 - W_i) Y_i / (1 - e_i)

whose expectation is the unit's effect tau(x_i). The Qini (cumulative gain) curve at
the top fraction phi = k / n of units is

    G(phi) = (1 / n) * sum of c_i over the top k units,

the incremental outcome per unit of the whole population from treating only those
(G(1) is the IPW estimate of the average effect). Units with tied scores are one
block (the curve is linear across it, as for a random order within the tie), so a
constant score gives the straight line from (0, 0) to (1, G(1)): random targeting.

    AUUC = integral of G(phi) over [0, 1]          (trapezoids between blocks)
    Qini coefficient = AUUC - G(1) / 2             (area between the curve and random)

Both are in outcome units (e.g. purchases per user). A constant score has Qini 0; a
score that ranks by the true effect maximizes it.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _contributions(treated: np.ndarray, outcome: np.ndarray, propensity: np.ndarray) -> np.ndarray:
    w = np.asarray(treated, dtype=bool)
    y = np.asarray(outcome, dtype="float64")
    e = np.asarray(propensity, dtype="float64")
    if not (len(w) == len(y) == len(e)):
        raise ValueError(f"lengths differ: treated {len(w)}, outcome {len(y)}, propensity {len(e)}")
    if len(w) == 0:
        raise ValueError("no units to compute a Qini curve on")
    if np.any((e <= 0.0) | (e >= 1.0)):
        raise ValueError("propensities of treatment must be in (0, 1) for both arms to be observable")
    return np.where(w, y / e, -y / (1.0 - e))


def qini_curve(
    score: np.ndarray, treated: np.ndarray, outcome: np.ndarray, propensity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(phi, G(phi)): fraction targeted and IPW incremental outcome per unit, from (0, 0) to (1, G(1)).

    ``propensity`` is P(treatment | x) of each row (``uplift.treatment_propensity``).
    """
    c = _contributions(treated, outcome, propensity)
    score = np.asarray(score, dtype="float64")
    if len(score) != len(c):
        raise ValueError(f"lengths differ: score {len(score)}, outcome {len(c)}")
    order = np.argsort(-score, kind="stable")
    sorted_score, gain = score[order], np.cumsum(c[order]) / len(c)
    block_end = np.append(sorted_score[1:] != sorted_score[:-1], True)  # last row of each tie block
    phi = (np.flatnonzero(block_end) + 1) / len(c)
    return np.concatenate([[0.0], phi]), np.concatenate([[0.0], gain[block_end]])


def auuc(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray, propensity: np.ndarray) -> float:
    """Area under the Qini (cumulative gain) curve, trapezoids between tie blocks."""
    phi, gain = qini_curve(score, treated, outcome, propensity)
    return float(np.trapezoid(gain, phi))


def qini_coefficient(
    score: np.ndarray, treated: np.ndarray, outcome: np.ndarray, propensity: np.ndarray
) -> float:
    """Area between the Qini curve and random targeting (the line to (1, G(1)))."""
    phi, gain = qini_curve(score, treated, outcome, propensity)
    return float(np.trapezoid(gain, phi) - gain[-1] / 2.0)


def pehe(tau_hat: np.ndarray, tau_true: np.ndarray) -> float:
    """Precision in estimating heterogeneous effects: sqrt(mean((tau_hat - tau)^2))."""
    tau_hat, tau_true = np.asarray(tau_hat, dtype="float64"), np.asarray(tau_true, dtype="float64")
    if tau_hat.shape != tau_true.shape or tau_hat.size == 0:
        raise ValueError(f"need two non-empty arrays of one shape, got {tau_hat.shape} and {tau_true.shape}")
    return float(np.sqrt(np.mean((tau_hat - tau_true) ** 2)))


def qini_figure(
    scores: Mapping[str, np.ndarray],
    treated: np.ndarray,
    outcome: np.ndarray,
    propensity: np.ndarray,
    *,
    title: str = "Uplift (Qini) curve",
):
    """A matplotlib figure with the Qini curve of each named score and random targeting."""
    if not scores:
        raise ValueError("no scores to plot")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    end = 0.0
    for name, score in scores.items():
        phi, gain = qini_curve(score, treated, outcome, propensity)
        q = float(np.trapezoid(gain, phi) - gain[-1] / 2.0)
        ax.plot(phi, gain, label=f"{name} (Qini {q:.4f})")
        end = gain[-1]
    ax.plot([0.0, 1.0], [0.0, end], linestyle="--", color="grey", label="random targeting")
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set(title=title, xlabel="fraction of units treated, by predicted uplift",
           ylabel="incremental outcome per unit (IPW)")
    ax.legend()
    fig.tight_layout()
    return fig
