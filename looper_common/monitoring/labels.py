"""Outputs and labels of the newest matured day: label rates and their shift, the champion's calibration."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from looper_common.contracts.blueprint import Blueprint
from looper_common.decision_science.rewards import label_reward
from looper_common.monitoring.metrics import Metric
from looper_common.monitoring.serving import logged_action_probability


def _label_mean(examples: pa.Table, label: str) -> tuple[float | None, int]:
    values = examples.filter(pc.equal(examples["label"], label))["value"]
    return (pc.mean(values).as_py() if len(values) else None), len(values)


def label_health(blueprint: Blueprint, examples: pa.Table, reference: pa.Table) -> list[Metric]:
    """Per label: today's rate, its shift from the reference window; calibration of the objective's scores.

    ``examples`` are the silver examples that matured on the run date; ``reference``
    those of the reference window. Calibration is the mean logged score of the chosen
    action minus the mean label, over the policy-served examples of the objective label
    (positive: the model promised more than happened); the label counts as the reward the
    score predicts (``decision_science.rewards``: a multiclass label's class reward).
    """
    out = []
    for label in blueprint.labels:
        rate, n = _label_mean(examples, label.name)
        ref_rate, ref_n = _label_mean(reference, label.name)
        out.append(Metric("label_rate", rate, label.name, f"{n} matured examples"))
        shift = None if rate is None or ref_rate is None else abs(rate - ref_rate)
        out.append(Metric("label_rate_shift", shift, label.name, f"vs {ref_rate} over {ref_n} reference examples"))
    objective = examples.filter(pc.and_(pc.equal(examples["label"], blueprint.objectives.maximize),
                                        pc.is_valid(examples["scores"])))
    if objective.num_rows:
        scores = logged_action_probability(objective["scores"], objective["action"])
        # the label as the scores promise it: 0/1, the class's reward (multiclass) or the value
        values = label_reward(blueprint, blueprint.objectives.maximize,
                              objective["value"].to_numpy(zero_copy_only=False))
        known = np.isfinite(scores) & np.isfinite(values)
        gap = float(scores[known].mean() - values[known].mean()) if known.any() else None
        out.append(Metric("calibration_gap", gap, blueprint.objectives.maximize,
                          f"{int(known.sum())} policy-served examples"))
    else:
        out.append(Metric("calibration_gap", None, blueprint.objectives.maximize, "no policy-served examples"))
    return out
