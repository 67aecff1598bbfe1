"""What a label's value is worth to the policy, per task type (``model.task``).

- ``binary``: the label is 0/1 (any positive value counts as 1); the policy's score
  is P(label = 1 | features, action), the logged reward the 0/1 label.
- ``regression``: the label is a number (minutes watched, revenue); the score is the
  predicted value, the logged reward the value itself.
- ``multiclass``: the label is a class code (the outcome a unit took, e.g. 0 ignored,
  1 opened, 2 bought, 3 unsubscribed). A label's ``classes`` maps each code to its
  reward (``{0: 0, 1: 1, 2: 5, 3: -4}``); the score is the expected reward
  sum_c P(c | features, action) * reward(c), the logged reward that of the class that
  happened. Without ``classes`` a class is worth its code.

Pure Python (the SDK imports the contracts): the NumPy side is ``decision_science.rewards``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from looper_common.contracts.blueprint import Blueprint, LabelSpec


def class_rewards(label: LabelSpec) -> dict[float, float] | None:
    """The declared reward of each class code of a multiclass label (None: a class is worth its code)."""
    if label.classes is None:
        return None
    return {float(code): float(reward) for code, reward in label.classes.items()}


def reward_of_class(label: LabelSpec, code: float) -> float:
    """One class code's reward (NaN for a code the label does not declare)."""
    rewards = class_rewards(label)
    if rewards is None:
        return float(code)
    return rewards.get(float(code), float("nan"))


def task_problems(blueprint: Blueprint) -> list[str]:
    """What makes the labels inconsistent with ``model.task`` (an empty list when nothing does)."""
    task = blueprint.model.task
    problems = []
    for label in blueprint.labels:
        if label.classes is None:
            continue
        where = f"labels.{label.name}.classes"
        if task != "multiclass":
            problems.append(f"{where}: only a multiclass task (model.task: multiclass) has classes, not {task}")
        elif len(label.classes) < 2:
            problems.append(f"{where}: needs at least 2 classes, got {len(label.classes)}")
        elif float(label.default) not in class_rewards(label):
            problems.append(f"{where}: the label's default {label.default:g} is not one of its classes "
                            f"{sorted(label.classes)}")
    return problems
