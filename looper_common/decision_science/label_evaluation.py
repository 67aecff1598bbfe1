"""One label's challenger against its champion: metrics, the promotion gate, the MLflow run, the alias move.

Both models are scored on the held-out examples (model metrics and the constant
baseline); for the objective's label the value of the policy each would serve is
estimated off-policy too, both under the blueprint's policy params (the gate compares
models; ``tune_policy`` then tunes the champion's params). The verdict, metrics, plots
and ``report_<label>.html`` go to an MLflow run; with ``promotion.mode: auto`` a
promotion moves the champion alias (recorded in ``gold/alias_history``).
"""

from __future__ import annotations

import html
import json
import logging
from datetime import date

import mlflow
import numpy as np
import pandas as pd

from looper_common.contracts.blueprint import Blueprint, LabelSpec
from looper_common.decision_science import report
from looper_common.decision_science.evaluation import (
    PromotionVerdict,
    evaluate_policies,
    evaluation_plots,
    holdout_baseline,
    label_metrics,
    ope_metrics,
    ope_promotion,
    promotion_decision,
    qini_plot,
)
from looper_common.decision_science.policies import policy_labels
from looper_common.decision_science.promotion_run import LabelEvaluation
from looper_common.decision_science.version_review import evaluation_tags, review_version
from looper_common.lake.engine import Lake
from looper_common.training.registry import CHALLENGER, CHAMPION, alias_version, load_model, model_name, move_alias

log = logging.getLogger(__name__)
Sections = list[tuple[str, str]]  # (heading, HTML) of the report


def other_policy_models(blueprint: Blueprint) -> dict[str, object] | None:
    """Champions (else challengers) of the labels a weighted_sum policy adds; None if one is missing."""
    models = {}
    for label in policy_labels(blueprint)[1:]:
        name = model_name(blueprint.name, label)
        version = alias_version(name, CHAMPION) or alias_version(name, CHALLENGER)
        if version is None:
            return None
        models[label] = load_model(f"models:/{name}/{version}")
    return models


def judge(
    models: dict[str, object], holdout: pd.DataFrame, blueprint: Blueprint, label: LabelSpec, *, n_bootstrap: int
) -> tuple[PromotionVerdict, Sections]:
    """The promotion verdict on ``holdout`` (``gate: ope`` replaces the loss rule's) and its report sections."""
    name = model_name(blueprint.name, label.name)
    scored = {role: label_metrics(m, holdout, blueprint, label) for role, m in models.items()}
    verdict = promotion_decision(
        blueprint, scored["challenger"], scored.get("champion"), holdout_baseline(holdout, blueprint, label)
    )
    sections = [("Model metrics", report.table([{"model": role, **metrics} for role, metrics in scored.items()]))]
    if label.name != blueprint.objectives.maximize:
        return verdict, sections
    others = other_policy_models(blueprint)
    if others is None:
        log.warning("%s: the %s policy needs a model of every weighted label; skipping OPE until they "
                    "are registered", name, blueprint.policy.type)
        return verdict, sections
    result = evaluate_policies(
        holdout, blueprint, {role: ({label.name: m, **others}, None) for role, m in models.items()},
        reward_model=models["challenger"], label=label.name,
        baseline="champion" if "champion" in models else "logged", n_bootstrap=n_bootstrap,
    )
    sections.append((f"Off-policy value of each model's policy ({label.name})", report.ope_section(result)))
    if blueprint.promotion.gate == "ope":
        gated = ope_promotion(blueprint, result)
        verdict = PromotionVerdict(gated.promote, gated.reason, {**verdict.metrics, **gated.metrics})
    else:
        verdict.metrics.update(ope_metrics(result))
    return verdict, sections


def log_evaluation(
    models: dict[str, object], holdout: pd.DataFrame, blueprint: Blueprint, label: LabelSpec, run_date: date, *,
    challenger: str, champion: str | None, verdict: PromotionVerdict, sections: Sections,
) -> mlflow.entities.Run:
    """The MLflow run of one label's evaluation: tags, metrics, plots and ``report_<label>.html``."""
    name = model_name(blueprint.name, label.name)
    auto = blueprint.promotion.mode == "auto"
    with mlflow.start_run(run_name=f"evaluate {label.name} {run_date}") as run:
        mlflow.set_tags({
            "blueprint": blueprint.name, "blueprint_version": blueprint.version, "label": label.name,
            "run_date": str(run_date), "challenger_version": challenger,
            "champion_version": str(champion), "promote": str(verdict.promote and auto),
            "reason": verdict.reason,
        })
        mlflow.log_metric("holdout_rows", len(holdout))
        mlflow.log_metrics({k: v for k, v in verdict.metrics.items() if np.isfinite(v)})
        plots = evaluation_plots(models, holdout, blueprint, label)
        mlflow.log_figure(plots, f"evaluation_{label.name}.png")
        mlflow.log_dict(verdict.metrics, f"evaluation_{label.name}.json")
        sections = [("Verdict", f"<p><b>{'promote' if verdict.promote else 'keep'}</b>: "
                                f"{html.escape(verdict.reason)}</p>"),
                    *sections, ("Calibration and scores", report.figure(plots))]
        if blueprint.policy.type == "uplift":
            qini = qini_plot(models, holdout, blueprint, label)
            mlflow.log_figure(qini, f"qini_{label.name}.png")
            sections.append(("Uplift (Qini) curve", report.figure(qini)))
        mlflow.log_text(report.html_report(
            f"{name}: challenger v{challenger} vs champion v{champion}", sections,
            {"run date": run_date, "held-out decisions": len(holdout),
             "gate": blueprint.promotion.gate, "blueprint version": blueprint.version},
        ), f"report_{label.name}.html")
    return run


def evaluate_label(
    lake: Lake, blueprint: Blueprint, label: LabelSpec, holdout: pd.DataFrame, run_date: date, *,
    challenger: str, champion: str | None, n_bootstrap: int = 200,
) -> LabelEvaluation:
    """Judge ``challenger`` against ``champion`` (None: the first model) and promote it when the rule says so."""
    name = model_name(blueprint.name, label.name)
    models = {"challenger": load_model(f"models:/{name}/{challenger}")}
    if champion is not None:
        models["champion"] = load_model(f"models:/{name}/{champion}")
    verdict, sections = judge(models, holdout, blueprint, label, n_bootstrap=n_bootstrap)
    if label.name == blueprint.objectives.maximize and (
            blueprint.promotion.stage != "none" or blueprint.promotion.require_canary is not None):
        from looper_common.decision_science.live_evidence import live_sections

        verdict, live = live_sections(lake, blueprint, label.name, holdout, models, challenger, verdict,
                                      n_bootstrap=n_bootstrap)
        sections += live
    run = log_evaluation(models, holdout, blueprint, label, run_date, challenger=challenger, champion=champion,
                         verdict=verdict, sections=sections)
    log.info("%s: challenger v%s vs champion v%s: %s", name, challenger, champion, verdict.reason)
    outcome = "kept"
    if verdict.promote and blueprint.promotion.mode == "auto":
        move_alias(
            lake, name=name, alias=CHAMPION, version=challenger, actor="evaluate_models",
            reason=verdict.reason, metrics=verdict.metrics, blueprint=blueprint.name,
            blueprint_version=blueprint.version, run_date=run_date,
        )
        log.info("%s: v%s promoted to champion", name, challenger)
        outcome = "promoted"
    elif verdict.promote:
        log.info("%s: promotion.mode is manual: a reviewer can move the champion alias to v%s "
                 "in the MLflow UI (Model registry > %s > Version %s > Aliases)", name, challenger, name, challenger)
        outcome = "promotable"
    review_version(name, challenger, evaluation_tags(run.info.experiment_id, run.info.run_id,
                                                     f"report_{label.name}.html", verdict, outcome, str(run_date)))
    log.debug("metrics: %s", json.dumps(verdict.metrics))
    return LabelEvaluation(name, challenger, champion, outcome, verdict.reason)
