"""``evaluate_models`` for one blueprint and run date: every label's challenger judged, promoted or kept.

The examples of the training window are read in the background while MLflow,
scikit-learn and matplotlib are imported; the holdout is ``splits.time_split``'s, the
examples matured on the run date that ``train_models`` left out of every fit and every
selection step. Per label, alias moves made by reviewers since the last run are
recorded first; a label with a challenger that is not already the champion is then
judged by ``label_evaluation.evaluate_label``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from looper_common.contracts.blueprint import Blueprint
from looper_common.contracts.config import Settings
from looper_common.jobrunner import in_background
from looper_common.lake.engine import Lake
from looper_common.training.examples import load_training_frame
from looper_common.training.splits import time_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelEvaluation:
    """One label's outcome: ``skipped`` (nothing to judge), ``kept``, ``promotable`` (manual) or ``promoted``."""

    model: str
    challenger: str | None
    champion: str | None
    outcome: str
    reason: str

    def summary(self) -> str:
        return f"{self.model}: {self.outcome} ({self.reason})"


@dataclass(frozen=True)
class EvaluationRun:
    blueprint: str
    run_date: date
    holdout_rows: int
    labels: tuple[LabelEvaluation, ...]

    def summary(self) -> str:
        judged = "; ".join(label.summary() for label in self.labels)
        return f"{self.blueprint} on {self.run_date}, {self.holdout_rows} held-out decisions: {judged}"


def evaluate_models(
    settings: Settings, lake: Lake, blueprint: Blueprint, run_date: date, *, n_bootstrap: int = 200,
    lookback_days: int = 28,
) -> EvaluationRun:
    """Judge each label's challenger against its champion on the holdout of ``run_date``.

    ``n_bootstrap`` is the number of OPE bootstrap resamples for the objective's label;
    ``lookback_days`` is the training window (``train_models``'), which fixes the split.
    """
    examples = in_background(lambda: load_training_frame(lake, blueprint, run_date, lookback_days), "examples")
    # MLflow, scikit-learn, matplotlib: imported while the examples load
    from looper_common.decision_science.label_evaluation import evaluate_label
    from looper_common.training.registry import (
        CHALLENGER,
        CHAMPION,
        alias_version,
        configure_mlflow,
        detect_reviewer_moves,
        model_name,
    )

    configure_mlflow(settings, blueprint.name)
    holdout = time_split(examples.result().frame, run_date).holdout
    judged = []
    for label in blueprint.labels:
        name = model_name(blueprint.name, label.name)
        for move in detect_reviewer_moves(lake, name, blueprint.name, run_date):
            log.info("%s: reviewer moved %s (recorded)", name, move)
        challenger, champion = alias_version(name, CHALLENGER), alias_version(name, CHAMPION)
        if challenger is None or challenger == champion:
            log.info("%s: no new challenger to evaluate", name)
            judged.append(LabelEvaluation(name, challenger, champion, "skipped", "no new challenger"))
            continue
        if holdout.empty:
            log.warning("%s: no examples matured on %s to evaluate on", name, run_date)
            judged.append(LabelEvaluation(name, challenger, champion, "skipped", f"no examples matured on {run_date}"))
            continue
        judged.append(evaluate_label(
            lake, blueprint, label, holdout, run_date,
            challenger=challenger, champion=champion, n_bootstrap=n_bootstrap,
        ))
    return EvaluationRun(blueprint.name, run_date, len(holdout), tuple(judged))
