"""Policies: from a model's per-action scores to the action a unit gets.

A model predicts a label from the unit's features and an action; scoring a unit
under every action gives one score per action. The blueprint's policy turns scores
into a choice: ``threshold`` takes the first action when its score reaches the
threshold (``send`` when p(click | send) >= t), ``argmax`` takes the best-scoring
action, ``uplift`` takes the first action (the treatment) when its predicted effect,
score(treatment) - score(control), exceeds the treatment's ``cost``. Exploration
around the choice happens in the SDK at decision time.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from looper_common.blueprint import Blueprint
from looper_common.training_data import to_model_frame


def predict_scores(model: object, frame: pd.DataFrame, task: str) -> np.ndarray:
    """Score of each row: P(label = 1) for binary, the expected value for regression."""
    if task == "binary":
        return model.predict_proba(frame)[:, 1]
    if task == "multiclass":
        proba = model.predict_proba(frame)
        return proba @ np.asarray(model.classes_, dtype="float64")
    return np.asarray(model.predict(frame), dtype="float64")


def score_actions(model: object, wide: pd.DataFrame, blueprint: Blueprint) -> np.ndarray:
    """Scores of every unit (rows of ``wide``) under every action: shape (units, actions)."""
    columns = [
        predict_scores(model, to_model_frame(wide, blueprint, action=action), blueprint.model.task)
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
    if kind == "argmax":
        offsets = params.get("offsets", {}) or {}
        bias = np.array([float(offsets.get(a, 0.0)) for a in blueprint.decision.actions])
        return np.argmax(scores + bias, axis=1)
    if kind == "uplift":
        cost = float(params.get("cost", 0.0))
        return np.where(scores[:, 0] - scores[:, 1] > cost, 0, 1)
    raise NotImplementedError(f"policy type {kind!r} is not supported yet (threshold, argmax, uplift are)")


def policy_frame(model: object, wide: pd.DataFrame, blueprint: Blueprint,
                 params: Mapping[str, object] | None = None) -> pd.DataFrame:
    """Per unit: the chosen action and the score of every action (what gets published)."""
    scores = score_actions(model, wide, blueprint)
    chosen = choose_actions(scores, blueprint, params)
    actions = np.asarray(blueprint.decision.actions)
    out = pd.DataFrame({"unit_id": wide["unit_id"].astype(str).to_numpy(), "action": actions[chosen]})
    for i, action in enumerate(blueprint.decision.actions):
        out[f"score_{action}"] = scores[:, i]
    return out
