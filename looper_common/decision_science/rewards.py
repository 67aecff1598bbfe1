"""Labels as rewards and model outputs as scores, per task type (``contracts.tasks`` defines them)."""

from __future__ import annotations

import numpy as np

from looper_common.contracts.blueprint import Blueprint, LabelSpec
from looper_common.contracts.tasks import class_rewards


def label_spec(blueprint: Blueprint, label: str | None = None) -> LabelSpec:
    """The blueprint's label ``label`` (the objective's when None)."""
    name = label or blueprint.objectives.maximize
    return next(spec for spec in blueprint.labels if spec.name == name)


def class_values(spec: LabelSpec, classes: np.ndarray) -> np.ndarray:
    """The reward of each of a classifier's ``classes_`` (NaN for a class the label does not declare)."""
    codes = np.asarray(classes, dtype="float64")
    rewards = class_rewards(spec)
    if rewards is None:
        return codes
    return np.array([rewards.get(float(c), np.nan) for c in codes], dtype="float64")


def label_reward(blueprint: Blueprint, label: str, y: np.ndarray) -> np.ndarray:
    """The logged reward of label values: 0/1 for binary, the class's reward for multiclass, else the value."""
    y = np.asarray(y, dtype="float64")
    task = blueprint.model.task
    if task == "binary":
        return (y > 0).astype("float64")
    if task == "multiclass":
        rewards = class_rewards(label_spec(blueprint, label))
        if rewards is not None:
            return np.array([rewards.get(v, np.nan) for v in y.tolist()], dtype="float64")
    return y


def expected_reward(proba: np.ndarray, classes: np.ndarray, spec: LabelSpec) -> np.ndarray:
    """sum_c P(c) * reward(c) per row of class probabilities.

    A class the model knows but the label does not declare has no reward: raises ValueError.
    """
    values = class_values(spec, classes)
    if np.isnan(values).any():
        unknown = [c for c, v in zip(np.asarray(classes).tolist(), values, strict=True) if np.isnan(v)]
        raise ValueError(f"label {spec.name!r}: the model predicts class(es) {unknown} that classes does not declare")
    return np.asarray(proba, dtype="float64") @ values
