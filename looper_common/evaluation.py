"""Champion versus challenger on the newest held-out period, and the promotion rule.

Both models are scored on the examples that matured on the run date (which neither
was trained on): model metrics, the trivial baseline, and the product metric of the
policy each would produce, estimated on the logged decisions with inverse propensity
weighting. The rule is code: a challenger must beat the no-signal baseline and be no
worse than the champion; with ``mode: manual`` a reviewer moves the alias instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from looper_common.blueprint import Blueprint, LabelSpec  # noqa: E402
from looper_common.metrics import LOSS, baseline_metrics, model_metrics, predict_for_metrics  # noqa: E402
from looper_common.policies import choose_actions, score_actions  # noqa: E402
from looper_common.training_data import to_model_frame  # noqa: E402

MIN_AUC = 0.55
LOSS_TOLERANCE = 0.005  # relative: "not worse" allows this much noise


@dataclass
class PromotionVerdict:
    promote: bool
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)


def policy_value(model: object, holdout: pd.DataFrame, blueprint: Blueprint, reward: str) -> dict[str, float]:
    """IPS and self-normalized IPS value of the model's greedy policy on the logged decisions."""
    chosen = choose_actions(score_actions(model, holdout, blueprint), blueprint)
    actions = np.asarray(blueprint.decision.actions)
    match = (actions[chosen] == holdout["action"].to_numpy()).astype("float64")
    weights = match / holdout["propensity"].to_numpy(dtype="float64")
    rewards = holdout[reward].to_numpy(dtype="float64")
    n = len(holdout)
    return {
        "policy_ips": float(np.sum(weights * rewards) / n) if n else float("nan"),
        "policy_snips": float(np.sum(weights * rewards) / np.sum(weights)) if weights.sum() else float("nan"),
        "policy_match_rate": float(match.mean()) if n else float("nan"),
        "policy_first_action_rate": float(np.mean(chosen == 0)) if n else float("nan"),
    }


def label_metrics(model: object, holdout: pd.DataFrame, blueprint: Blueprint, label: LabelSpec) -> dict[str, float]:
    task = blueprint.model.task
    y = holdout[label.name].to_numpy(dtype="float64")
    y = (y > 0).astype(int) if task == "binary" else y
    metrics = model_metrics(task, y, predict_for_metrics(model, task, to_model_frame(holdout, blueprint)))
    if label.name == blueprint.objectives.maximize:
        metrics.update(policy_value(model, holdout, blueprint, label.name))
    return metrics


def holdout_baseline(holdout: pd.DataFrame, blueprint: Blueprint, label: LabelSpec) -> dict[str, float]:
    y = holdout[label.name].to_numpy(dtype="float64")
    y = (y > 0).astype(int) if blueprint.model.task == "binary" else y
    return baseline_metrics(blueprint.model.task, y, y)


def promotion_decision(
    blueprint: Blueprint,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    baseline: dict[str, float],
) -> PromotionVerdict:
    """The promotion rule: beat the baseline, and be no worse than the champion."""
    task = blueprint.model.task
    loss = LOSS[task]
    metrics = {f"challenger.{k}": v for k, v in challenger.items()}
    metrics.update({f"baseline.{k}": v for k, v in baseline.items()})
    if champion:
        metrics.update({f"champion.{k}": v for k, v in champion.items()})
    if challenger[loss] >= baseline[loss]:
        return PromotionVerdict(
            False, f"{loss} {challenger[loss]:.4f} does not beat the constant baseline {baseline[loss]:.4f}", metrics
        )
    if task == "binary" and not challenger.get("roc_auc", 0.0) >= MIN_AUC:
        return PromotionVerdict(False, f"AUC {challenger.get('roc_auc'):.3f} below {MIN_AUC}", metrics)
    if champion is None:
        return PromotionVerdict(
            True, f"first model: {loss} {challenger[loss]:.4f} beats the baseline {baseline[loss]:.4f}", metrics
        )
    if challenger[loss] > champion[loss] * (1 + LOSS_TOLERANCE):
        return PromotionVerdict(
            False, f"{loss} {challenger[loss]:.4f} worse than the champion's {champion[loss]:.4f}", metrics
        )
    return PromotionVerdict(True, f"{loss} {challenger[loss]:.4f} vs champion {champion[loss]:.4f}: not worse", metrics)


def evaluation_plots(models: dict[str, object], holdout: pd.DataFrame, blueprint: Blueprint, label: LabelSpec):
    """Calibration and score-distribution figures for the compared models."""
    task = blueprint.model.task
    frame = to_model_frame(holdout, blueprint)
    y = holdout[label.name].to_numpy(dtype="float64")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for role, model in models.items():
        pred = np.asarray(
            predict_for_metrics(model, task, frame) if task != "multiclass" else model.predict(frame), dtype="float64"
        )
        bins = np.quantile(pred, np.linspace(0, 1, 11))
        index = np.clip(np.searchsorted(bins, pred, side="right") - 1, 0, 9)
        means = pd.DataFrame({"p": pred, "y": y, "b": index}).groupby("b").mean()
        left.plot(means["p"], means["y"], marker="o", label=role)
        right.hist(pred, bins=40, alpha=0.5, label=role)
    lo, hi = float(np.nanmin(y)), float(np.nanmax(y)) if len(y) else 1.0
    left.plot([lo, hi], [lo, hi], linestyle="--", color="grey", label="perfect")
    left.set(title=f"Calibration: {label.name}", xlabel="predicted", ylabel="observed")
    right.set(title="Score distribution", xlabel="predicted", ylabel="examples")
    left.legend()
    right.legend()
    fig.tight_layout()
    return fig
