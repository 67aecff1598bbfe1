"""``tune_policy`` for one blueprint and run date: the champion's policy params tuned on the newest decisions.

Nothing happens without a champion, when the champion was already tuned for the run
date (unless forced) or when no decisions matured on it. Otherwise the decisions are
read in the background while hyperopt, scikit-learn and matplotlib are imported, and
``champion_tuning.tune_champion`` runs the search and tags the champion version.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from looper_common.contracts.blueprint import Blueprint
from looper_common.contracts.config import Settings
from looper_common.jobrunner import in_background
from looper_common.lake.engine import Lake
from looper_common.publishing.publish import POLICY_PARAMS_TAG, TUNED_DATE_TAG, find_champion
from looper_common.training.examples import load_training_frame
from looper_common.training.registry import model_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuningRun:
    """What one tuning run did: ``skipped`` (with why), ``tuned`` or ``kept`` (the blueprint's params won)."""

    blueprint: str
    run_date: date
    outcome: str
    reason: str
    model: str | None = None  # the champion, ``<name> v<version>``
    params: Mapping[str, object] | None = None
    decisions: int = 0

    def summary(self) -> str:
        champion = f"{self.model}: " if self.model else ""
        params = f" {json.dumps(self.params)}" if self.params is not None else ""
        return f"{self.blueprint} on {self.run_date}: {champion}{self.outcome}{params} ({self.reason})"


def tune_policy(
    settings: Settings,
    lake: Lake,
    blueprint: Blueprint,
    run_date: date,
    *,
    max_evals: int | None = None,
    n_bootstrap: int = 200,
    force: bool = False,
) -> TuningRun:
    """Tune the champion's policy params on the decisions matured on ``run_date`` under the guardrails.

    ``max_evals`` trials (default ``policy.tuning.max_evals``); ``n_bootstrap`` resamples
    for the final estimates; ``force`` tunes again a champion already tuned for the date.
    """
    skipped = {"blueprint": blueprint.name, "run_date": run_date, "outcome": "skipped"}
    champion = find_champion(settings.mlflow.tracking_uri, blueprint)
    if champion is None:
        name = model_name(blueprint.name, blueprint.objectives.maximize)
        log.info("no champion of %s yet: nothing to tune", name)
        return TuningRun(**skipped, reason=f"no champion of {name}")
    label = f"{champion.name} v{champion.version}"
    if champion.tags.get(TUNED_DATE_TAG) == str(run_date) and not force:
        log.info("%s v%s was already tuned for %s: %s (use --force to tune again)", champion.name,
                 champion.version, run_date, champion.tags.get(POLICY_PARAMS_TAG))
        return TuningRun(**skipped, reason=f"already tuned for {run_date}", model=label)
    examples = in_background(lambda: load_training_frame(lake, blueprint, run_date, lookback_days=0), "examples")
    # hyperopt, scikit-learn (loading the models), matplotlib: imported while the examples load
    from looper_common.decision_science.champion_tuning import tune_champion
    from looper_common.training.registry import configure_mlflow

    configure_mlflow(settings, blueprint.name)
    wide = examples.result().frame
    holdout = wide[wide["matured_date"] == run_date]
    if holdout.empty:
        log.warning("no decisions matured on %s: nothing to tune on", run_date)
        return TuningRun(**skipped, reason=f"no decisions matured on {run_date}", model=label)
    return tune_champion(champion, holdout, blueprint, run_date, max_evals=max_evals, n_bootstrap=n_bootstrap)
