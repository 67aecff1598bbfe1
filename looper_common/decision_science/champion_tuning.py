"""The champion's policy params tuned in one MLflow run, then written as tags of its model version.

The champion models of the policy's labels and guardrail labels score the decisions;
``policy_tuning.tune`` searches the params, each trial a nested run. The parent run
gets the chosen params, the OPE estimates (tuned vs the blueprint's params vs logged),
``pareto.png``, ``trials.csv`` and ``report_policy.html``; the champion version gets
``policy_params`` (what ``publish_policies`` serves), the tuned date and the run id.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd

from looper_common.contracts.blueprint import Blueprint
from looper_common.decision_science import report
from looper_common.decision_science.policies import policy_labels
from looper_common.decision_science.policy_tuning import Trial, TuningResult, flat_params, pareto_figure, tune
from looper_common.decision_science.tuning_run import TuningRun
from looper_common.decision_science.version_review import review_version, tuning_tags
from looper_common.publishing.publish import POLICY_PARAMS_TAG, TUNED_DATE_TAG
from looper_common.training.registry import CHAMPION, alias_version, load_model, model_name

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)


def tuning_seed(run_date: date) -> int:
    """hyperopt's seed: the run date, so a rerun with --force searches the same way."""
    return int(run_date.strftime("%Y%m%d"))


def champion_models(blueprint: Blueprint) -> dict[str, object]:
    """The champion model of every policy and guardrail label that has one."""
    models = {}
    labels = set(policy_labels(blueprint)) | {g.metric for g in blueprint.objectives.guardrails}
    for label in sorted(labels):
        name = model_name(blueprint.name, label)
        if label in {lb.name for lb in blueprint.labels} and alias_version(name, CHAMPION) is not None:
            models[label] = load_model(f"models:/{name}@{CHAMPION}")
    return models


def trial_logger(tags: Mapping[str, str]) -> Callable[[Trial], None]:
    """A nested MLflow run per trial: its params, objective, feasibility and guardrails."""

    def log_trial(trial: Trial) -> None:
        with mlflow.start_run(run_name=f"trial {trial.number}", nested=True, tags=dict(tags)):
            mlflow.log_params({k: round(v, 6) for k, v in flat_params(trial.params).items()})
            mlflow.log_metrics({"objective": trial.objective, "feasible": float(trial.feasible),
                                **{f"guardrail.{k}": v for k, v in trial.guardrails.items()}})

    return log_trial


def log_tuning(result: TuningResult, blueprint: Blueprint, champion: ModelVersion, holdout: pd.DataFrame,
               run_date: date) -> None:
    """The active run's chosen params, OPE metrics, Pareto plot, trials and HTML report."""
    evaluation = result.evaluation
    lift = evaluation.lifts["tuned"]["dr"]
    mlflow.log_params({f"chosen.{k}": round(v, 6) for k, v in flat_params(result.params).items()})
    metrics = {**evaluation.policies["tuned"].metrics("ope.tuned"),
               **evaluation.policies["untuned"].metrics("ope.untuned"),
               **evaluation.policies["logged"].metrics("ope.logged"),
               "ope.tuned.lift_dr": lift.value, "ope.tuned.lift_dr_lower": lift.lower,
               "ope.tuned.lift_dr_upper": lift.upper, "tuned": float(result.tuned)}
    mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
    figure = pareto_figure(result, blueprint)
    mlflow.log_figure(figure, "pareto.png")
    trials = result.trials_frame()
    mlflow.log_text(trials.to_csv(index=False), "trials.csv")
    origin = "tuned" if result.tuned else "the blueprint's"
    summary = (f"<p>Chosen params <code>{html.escape(json.dumps(result.params))}</code> "
               f"({origin}); DR lift over the "
               f"blueprint's params {lift.value:+.4f} ({lift.lower:+.4f} .. {lift.upper:+.4f}).</p>"
               + "".join(f"<p>{html.escape(n)}</p>" for n in result.notes))
    mlflow.log_text(report.html_report(
        f"{champion.name} v{champion.version}: policy tuning", [
            ("Chosen policy", summary),
            ("Off-policy value: tuned vs blueprint params vs logged", report.ope_section(evaluation)),
            ("Objective vs guardrail", report.figure(figure)),
            ("Trials", report.table(trials.to_dict("records"))),
        ], {"run date": run_date, "decisions": len(holdout), "trials": len(result.trials)},
    ), "report_policy.html")


def tune_champion(champion: ModelVersion, holdout: pd.DataFrame, blueprint: Blueprint, run_date: date, *,
                  max_evals: int | None = None, n_bootstrap: int = 200) -> TuningRun:
    """Tune the champion's policy params on ``holdout`` in one MLflow run and tag the champion version."""
    models = champion_models(blueprint)
    log.info("tuning %s v%s on %d decisions matured on %s (models of %s)", champion.name, champion.version,
             len(holdout), run_date, sorted(models))
    tags = {"blueprint": blueprint.name, "blueprint_version": blueprint.version, "run_date": str(run_date),
            "champion_version": str(champion.version), "job": "tune_policy"}
    with mlflow.start_run(run_name=f"tune_policy {run_date}", tags=tags) as parent:
        result = tune(holdout, blueprint, models, max_evals=max_evals, seed=tuning_seed(run_date),
                      n_bootstrap=n_bootstrap, on_trial=trial_logger(tags))
        log_tuning(result, blueprint, champion, holdout, run_date)
        run_id = parent.info.run_id
    review_version(champion.name, str(champion.version), {
        POLICY_PARAMS_TAG: json.dumps(result.params), TUNED_DATE_TAG: str(run_date),
        "policy_tuning_run_id": run_id, **tuning_tags(parent.info.experiment_id, run_id),
    })
    lift = result.evaluation.lifts["tuned"]["dr"]
    log.info("%s v%s: policy params %s (%s; DR lift %+.4f over the blueprint's, interval %+.4f..%+.4f)",
             champion.name, champion.version, json.dumps(result.params),
             "tuned" if result.tuned else "kept", lift.value, lift.lower, lift.upper)
    return TuningRun(
        blueprint.name, run_date, "tuned" if result.tuned else "kept",
        f"DR lift {lift.value:+.4f} ({lift.lower:+.4f}..{lift.upper:+.4f}) over the blueprint's params",
        model=f"{champion.name} v{champion.version}", params=dict(result.params), decisions=len(holdout),
    )
