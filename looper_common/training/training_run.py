"""``train_models`` for one blueprint and run date: examples in, a challenger per label out.

The examples are read in the background while MLflow, scikit-learn and hyperopt are
imported; ``train.train_blueprint`` tunes and registers a model per label inside one
parent MLflow run, and each new version becomes its label's ``challenger`` (the move
recorded in ``gold/alias_history``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from looper_common.contracts.blueprint import Blueprint
from looper_common.contracts.config import Settings
from looper_common.jobrunner import in_background
from looper_common.lake.engine import Lake
from looper_common.training.examples import TrainingFrame, load_training_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainRun:
    """What one training run made: the examples it read and the challengers it registered."""

    blueprint: str
    run_date: date
    examples: int
    silver_version: int
    challengers: tuple[tuple[str, str], ...] = ()  # (registered model, version)

    def summary(self) -> str:
        if not self.examples:
            return f"{self.blueprint} on {self.run_date}: no matured examples, nothing trained"
        made = ", ".join(f"{name} v{version}" for name, version in self.challengers) or "no new challenger"
        read = f"{self.examples} examples (silver/examples v{self.silver_version})"
        return f"{self.blueprint} on {self.run_date}: {read}; {made}"


def challenger_reason(blueprint: Blueprint, family: str) -> str:
    """Why the new version is the challenger, as recorded in the alias history."""
    if blueprint.policy.type == "uplift":
        return f"best held-out Qini of the S-, T-, X- and DR-learners ({family})"
    return f"best of {blueprint.model.tuning.max_evals} trials ({family})"


def sample_tags(loaded: TrainingFrame, max_rows: int) -> dict[str, str]:
    """What the run trained on: all the window's examples, or a sample of them (``training.max_examples``)."""
    if loaded.sampled_from is None:
        return {"training.sampled": "false"}
    return {"training.sampled": "true", "training.sample_of_rows": str(loaded.sampled_from),
            "training.max_examples": str(max_rows),
            "training.sample": "decisions whose MD5(decision_id) falls below max_examples / rows"}


def train_models(
    settings: Settings,
    lake: Lake,
    blueprint: Blueprint,
    run_date: date,
    *,
    lookback_days: int = 28,
    force: bool = False,
) -> TrainRun:
    """Train a model per label on the examples matured in the lookback window; each becomes the challenger.

    A rerun for the same date and blueprint version keeps the versions it made (``force``
    trains again); without matured examples nothing is trained and the default action stays.
    """
    max_rows = settings.training.max_examples
    examples = in_background(lambda: load_training_frame(lake, blueprint, run_date, lookback_days, max_rows),
                             "examples")
    # MLflow, scikit-learn, hyperopt: imported while the examples load
    import mlflow

    from looper_common.training.registry import CHALLENGER, configure_mlflow, move_alias
    from looper_common.training.train import git_sha, train_blueprint

    loaded = examples.result()
    wide = loaded.frame
    log.info("%d matured examples for %s up to %s (silver/examples v%d, read by %s)",
             len(wide), blueprint.name, run_date, loaded.version, loaded.engine)
    if loaded.sampled_from is not None:
        log.warning("the window holds %d example rows, over training.max_examples = %d: trained on a sample "
                    "of its decisions (%d)", loaded.sampled_from, max_rows, len(wide))
    if wide.empty:
        log.warning("no matured examples yet: nothing to train, the default action stays in place")
        return TrainRun(blueprint.name, run_date, 0, loaded.version)
    configure_mlflow(settings, blueprint.name)
    tags = {
        "blueprint": blueprint.name,
        "blueprint_version": blueprint.version,
        "run_date": str(run_date),
        "git_sha": git_sha(settings.home),
        "delta.silver_examples.version": str(loaded.version),
        **sample_tags(loaded, max_rows),
    }
    with mlflow.start_run(run_name=f"train {run_date}", tags=tags):
        results = train_blueprint(wide, blueprint, run_date, tags, force=force)
    for result in results:
        move_alias(
            lake, name=result.model_name, alias=CHALLENGER, version=result.version, actor="train_models",
            reason=challenger_reason(blueprint, result.family), metrics=result.metrics,
            blueprint=blueprint.name, blueprint_version=blueprint.version, run_date=run_date,
        )
        log.info("%s v%s is the challenger", result.model_name, result.version)
    return TrainRun(blueprint.name, run_date, len(wide), loaded.version,
                    tuple((r.model_name, r.version) for r in results))
