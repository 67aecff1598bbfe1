"""Policies: from a model's per-action scores to the action a unit gets.

A model predicts a label from the unit's features and an action; scoring a unit
under every action gives one score per action. The blueprint's policy turns scores
into a choice: ``threshold`` takes the first action when its score reaches the
threshold (``send`` when p(click | send) >= t), ``argmax`` takes the best-scoring
action (plus per-action ``offsets``), ``uplift`` takes the first action (the treatment)
when its predicted effect, score(treatment) - score(control), exceeds the treatment's
``cost``, ``weighted_sum`` takes the argmax of a weighted
sum of several labels' scores (``weights``: label -> weight; the objective's weight
defaults to 1). Exploration around the choice happens in the SDK at decision time;
:func:`action_probabilities` is its vectorized twin, used to evaluate a candidate policy
on logged decisions exactly as the SDK would serve it.

Tuned parameters travel as one flat mapping: the policy's own (``threshold``,
``offsets``, ``weights``) and the exploration's (``epsilon``, ``temperature``, ``floor``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from looper_common.contracts.blueprint import Blueprint, ExplorationSpec, LabelSpec
from looper_common.decision_science.rewards import expected_reward, label_spec
from looper_common.training.examples import to_model_frame

EXPLORATION_PARAMS = ("epsilon", "temperature", "floor")


def predict_scores(model: object, frame: pd.DataFrame, task: str, label: LabelSpec | None = None) -> np.ndarray:
    """Score of each row: P(label = 1) for binary, the expected reward for multiclass, the value for regression.

    A multiclass score is sum_c P(c) * reward(c) with the rewards of ``label``'s
    ``classes`` (each class worth its code without them), as ``contracts.tasks`` defines.
    """
    if task == "binary":
        return model.predict_proba(frame)[:, 1]
    if task == "multiclass":
        proba = model.predict_proba(frame)
        if label is None:
            return proba @ np.asarray(model.classes_, dtype="float64")
        return expected_reward(proba, model.classes_, label)
    return np.asarray(model.predict(frame), dtype="float64")


def score_actions(model: object, wide: pd.DataFrame, blueprint: Blueprint, label: str | None = None) -> np.ndarray:
    """Scores of every unit (rows of ``wide``) under every action by ``label``'s model (the objective's by default)."""
    spec = label_spec(blueprint, label)
    columns = [
        predict_scores(model, to_model_frame(wide, blueprint, action=action), blueprint.model.task, spec)
        for action in blueprint.decision.actions
    ]
    return np.column_stack(columns)


def choose_actions(
    scores: np.ndarray, blueprint: Blueprint, params: Mapping[str, object] | None = None
) -> np.ndarray:
    """Index of the chosen action per row, by the blueprint's policy type and params."""
    params = {**blueprint.policy.params, **(params or {})}
    kind = blueprint.policy.type
    if kind == "threshold":
        threshold = float(params.get("threshold", 0.5))
        return np.where(scores[:, 0] >= threshold, 0, 1)
    if kind in ("argmax", "weighted_sum"):
        offsets = params.get("offsets", {}) or {}
        bias = np.array([float(offsets.get(a, 0.0)) for a in blueprint.decision.actions])
        return np.argmax(scores + bias, axis=1)
    if kind == "uplift":
        cost = float(params.get("cost", 0.0))
        return np.where(scores[:, 0] - scores[:, 1] > cost, 0, 1)
    raise NotImplementedError(f"policy type {kind!r} is not supported (threshold, argmax, weighted_sum, uplift are)")


def policy_labels(blueprint: Blueprint, params: Mapping[str, object] | None = None) -> list[str]:
    """Labels whose models the policy needs: the objective, plus the weighted ones."""
    labels = [blueprint.objectives.maximize]
    if blueprint.policy.type == "weighted_sum":
        weights = {**blueprint.policy.params, **(params or {})}.get("weights", {}) or {}
        labels += [name for name in weights if name not in labels]
    return labels


def policy_scores(
    models: object | Mapping[str, object], wide: pd.DataFrame, blueprint: Blueprint,
    params: Mapping[str, object] | None = None,
) -> np.ndarray:
    """The scores the policy decides on, shape (units, actions).

    ``models`` is one model (of the objective) or label -> model. For ``weighted_sum``
    the scores are ``sum(weight[label] * score[label])`` over the weighted labels.
    """
    if not isinstance(models, Mapping):
        models = {blueprint.objectives.maximize: models}
    needed = policy_labels(blueprint, params)
    missing = [label for label in needed if label not in models]
    if missing:
        raise ValueError(f"{blueprint.name}: the {blueprint.policy.type} policy needs a model of {missing}")
    return combine_scores({label: score_actions(models[label], wide, blueprint, label) for label in needed},
                          blueprint, params)


def combine_scores(
    label_scores: Mapping[str, np.ndarray], blueprint: Blueprint, params: Mapping[str, object] | None = None
) -> np.ndarray:
    """The policy's scores from each label's (units, actions) scores (a weighted sum or the objective's)."""
    objective = blueprint.objectives.maximize
    if blueprint.policy.type != "weighted_sum":
        return label_scores[objective]
    weights = {objective: 1.0, **({**blueprint.policy.params, **(params or {})}.get("weights", {}) or {})}
    return sum(float(w) * label_scores[label] for label, w in weights.items() if w)


def exploration_spec(blueprint: Blueprint, params: Mapping[str, object] | None = None) -> ExplorationSpec:
    """The blueprint's exploration with tuned ``epsilon``/``temperature``/``floor`` applied."""
    spec = blueprint.policy.exploration
    update = {k: float(v) for k, v in (params or {}).items() if k in EXPLORATION_PARAMS}
    return ExplorationSpec.model_validate({**spec.model_dump(), **update}) if update else spec


def action_probabilities(scores: np.ndarray, greedy: np.ndarray, spec: ExplorationSpec) -> np.ndarray:
    """Probability of every action per row, as ``exploration.action_distribution`` gives it."""
    n, k = scores.shape
    if spec.type == "softmax":
        z = np.exp((scores - scores.max(axis=1, keepdims=True)) / spec.temperature)
        probs = z / z.sum(axis=1, keepdims=True)
    else:
        eps = spec.epsilon if spec.type != "none" else 0.0
        probs = np.full((n, k), eps / k)
        probs[np.arange(n), greedy] += 1.0 - eps
    if spec.floor > 0.0:
        floor = min(spec.floor, 1.0 / k)
        lifted = np.maximum(probs, floor)
        above = lifted > floor
        excess = lifted.sum(axis=1, keepdims=True) - 1.0
        mass = np.where(above, lifted - floor, 0.0).sum(axis=1, keepdims=True)
        share = np.divide(excess, mass, out=np.zeros_like(mass), where=mass > 0)
        probs = np.where(above, lifted - (lifted - floor) * share, lifted)
    return probs


def target_probabilities(
    scores: np.ndarray, blueprint: Blueprint, params: Mapping[str, object] | None = None
) -> np.ndarray:
    """What the SDK would serve with these policy scores and params: (rows, actions) probabilities."""
    return action_probabilities(scores, choose_actions(scores, blueprint, params), exploration_spec(blueprint, params))


def policy_frame(models: object | Mapping[str, object], wide: pd.DataFrame, blueprint: Blueprint,
                 params: Mapping[str, object] | None = None) -> pd.DataFrame:
    """Per unit: the chosen action and the score of every action (what gets published)."""
    scores = policy_scores(models, wide, blueprint, params)
    chosen = choose_actions(scores, blueprint, params)
    actions = np.asarray(blueprint.decision.actions)
    out = pd.DataFrame({"unit_id": wide["unit_id"].astype(str).to_numpy(), "action": actions[chosen]})
    for i, action in enumerate(blueprint.decision.actions):
        out[f"score_{action}"] = scores[:, i]
    return out
