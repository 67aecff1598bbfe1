"""Champion versus challenger on the holdout, and the promotion rule.

Both models are scored on the holdout of ``training.splits.time_split`` (the examples
matured on the run date, which no fit and no selection step of either model has read:
each was fitted and selected on examples matured before its own run date): model
metrics, the trivial baseline, and the product value of the policy each would
produce, estimated off-policy on the logged decisions (IPS, SNIPS, DM, DR with
intervals: ``looper_common.decision_science.ope``). The rule is code. ``gate: metric``:
a challenger must beat the no-signal baseline and be no worse than the champion.
``gate: ope``: the lower bound of the challenger's estimated lift over the champion
(over the logged policy when there is none) must exceed ``min_lift``. With ``mode:
manual`` a reviewer moves the alias instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from looper_common.contracts.blueprint import Blueprint, LabelSpec  # noqa: E402
from looper_common.decision_science import ope  # noqa: E402
from looper_common.decision_science.ope import policy_column  # noqa: E402
from looper_common.decision_science.policies import policy_scores, score_actions, target_probabilities  # noqa: E402
from looper_common.decision_science.rewards import label_reward  # noqa: E402
from looper_common.training.examples import to_model_frame  # noqa: E402
from looper_common.training.metrics import LOSS, baseline_metrics, model_metrics, predict_for_metrics  # noqa: E402

MIN_AUC = 0.55
LOSS_TOLERANCE = 0.005  # relative: "not worse" allows this much noise


@dataclass
class PromotionVerdict:
    promote: bool
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)


def reward_of(holdout: pd.DataFrame, blueprint: Blueprint, label: str) -> np.ndarray:
    """The label as the reward OPE averages: 0/1 for binary, the class's reward for multiclass, else the value."""
    return label_reward(blueprint, label, holdout[label].to_numpy(dtype="float64"))


def logged_probabilities(holdout: pd.DataFrame, blueprint: Blueprint) -> np.ndarray:
    """The behaviour policy's logged distribution, (decisions, actions) in blueprint order."""
    actions = blueprint.decision.actions
    return np.array(
        [[float((probs or {}).get(a, 0.0)) for a in actions] for probs in holdout["action_probs"]],
        dtype="float64",
    ).reshape(len(holdout), len(actions))


def ope_columns(
    holdout: pd.DataFrame,
    blueprint: Blueprint,
    candidates: Mapping[str, tuple[object, Mapping[str, object] | None]],
    *,
    reward_model: object,
    label: str,
) -> dict[str, np.ndarray]:
    """The input of ``ope.evaluate`` for candidate policies on logged decisions.

    ``candidates`` maps a policy name to (models, params) as ``policies.policy_scores``
    takes them; the logged behaviour policy is always added as ``logged``. The reward
    model gives ``q_hat`` for the direct and doubly robust estimators.
    """
    actions = list(blueprint.decision.actions)
    index = holdout["action"].map({a: i for i, a in enumerate(actions)})
    if index.isna().any():
        unknown = sorted(set(holdout.loc[index.isna(), "action"]))
        raise ValueError(f"{blueprint.name}: logged actions {unknown} are not in {actions}")
    # an uplift policy's treatment costs ``cost`` per treated unit: values are net of it
    cost = np.zeros(len(actions))
    if blueprint.policy.type == "uplift" and label == blueprint.objectives.maximize:
        cost[0] = float(blueprint.policy.params.get("cost", 0.0))
    action_index = index.to_numpy(dtype="int32")
    columns: dict[str, np.ndarray] = {
        "decision_id": holdout["decision_id"].astype(str).to_numpy(),
        "action_index": action_index,
        "propensity": holdout["propensity"].to_numpy(dtype="float64"),
        "reward": reward_of(holdout, blueprint, label) - cost[action_index],
        "q_hat": score_actions(reward_model, holdout, blueprint, label) - cost,
        policy_column("logged"): logged_probabilities(holdout, blueprint),
    }
    for name, (models, params) in candidates.items():
        scores = policy_scores(models, holdout, blueprint, params)
        columns[policy_column(name)] = target_probabilities(scores, blueprint, params)
    return columns


def evaluate_policies(
    holdout: pd.DataFrame, blueprint: Blueprint,
    candidates: Mapping[str, tuple[object, Mapping[str, object] | None]], *,
    reward_model: object, label: str, baseline: str = "logged", n_bootstrap: int = 200, seed: int = 0,
) -> ope.OPEResult:
    """OPE of the candidates and the logged policy on ``holdout``, with lifts over ``baseline``.

    The columns are already in the driver: OPE runs on them with NumPy, no SparkSession.
    """
    columns = ope_columns(holdout, blueprint, candidates, reward_model=reward_model, label=label)
    return ope.evaluate(
        columns, ["logged", *candidates], baseline=baseline,
        clip=blueprint.promotion.clip, n_bootstrap=n_bootstrap, seed=seed,
    )


def ope_promotion(blueprint: Blueprint, result: ope.OPEResult, candidate: str = "challenger",
                  estimator: str = "dr") -> PromotionVerdict:
    """The OPE gate: promote when the lower bound of the lift over the baseline beats ``min_lift``."""
    lift = result.lifts[candidate][estimator]
    metrics = ope_metrics(result)
    level = f"{100 * (1 - result.alpha):.0f}%"
    text = (f"{estimator.upper()} lift over {result.baseline} {lift.value:+.4f} "
            f"({level} interval {lift.lower:+.4f}..{lift.upper:+.4f})")
    if lift.lower > blueprint.promotion.min_lift:
        return PromotionVerdict(True, f"{text}: lower bound above min_lift {blueprint.promotion.min_lift}", metrics)
    return PromotionVerdict(False, f"{text}: lower bound not above min_lift {blueprint.promotion.min_lift}", metrics)


def ope_metrics(result: ope.OPEResult) -> dict[str, float]:
    """Every estimate, bound, diagnostic and lift, as flat metric names (``ope.<policy>.<estimator>``)."""
    metrics: dict[str, float] = {}
    for name, est in result.policies.items():
        metrics.update(est.metrics(f"ope.{name}"))
    for name, lifts in result.lifts.items():
        for estimator, iv in lifts.items():
            metrics[f"ope.{name}.lift_{estimator}"] = iv.value
            metrics[f"ope.{name}.lift_{estimator}_lower"] = iv.lower
            metrics[f"ope.{name}.lift_{estimator}_upper"] = iv.upper
    return metrics


def label_metrics(model: object, holdout: pd.DataFrame, blueprint: Blueprint, label: LabelSpec) -> dict[str, float]:
    task = blueprint.model.task
    y = holdout[label.name].to_numpy(dtype="float64")
    y = (y > 0).astype(int) if task == "binary" else y
    return model_metrics(task, y, predict_for_metrics(model, task, to_model_frame(holdout, blueprint)))


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


def qini_plot(models: Mapping[str, object], holdout: pd.DataFrame, blueprint: Blueprint, label: LabelSpec):
    """The Qini curve of each uplift model on the held-out period (uplift blueprints)."""
    from looper_common.training.uplift import treatment_propensity
    from looper_common.training.uplift_metrics import qini_figure

    treatment = blueprint.decision.actions[0]
    effects = {role: np.subtract(*score_actions(m, holdout, blueprint).T[:2]) for role, m in models.items()}
    action = holdout["action"].to_numpy()
    return qini_figure(effects, (action == treatment).astype(int), reward_of(holdout, blueprint, label.name),
                       treatment_propensity(action, holdout["propensity"].to_numpy(), treatment),
                       title=f"Qini curve: {label.name} (held-out)")


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
