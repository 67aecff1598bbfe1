"""Compare challenger and champion on the newest held-out period and apply the promotion rule.

For each label of --blueprint: records alias moves made by reviewers since the last
run, scores champion and challenger on the examples that matured on --run-date
(model metrics and the constant baseline) and, for the objective's label, estimates
off-policy the value of the policy each would serve (IPS, SNIPS, DM, DR with bootstrap
intervals, against the logged policy too). It logs metrics, plots and an HTML report
(report_<label>.html) to an MLflow run. With `promotion.mode: auto` it moves the
champion alias when the rule says so: `gate: metric` compares losses, `gate: ope`
needs the lower bound of the DR lift over the champion above `min_lift`. Every move is
appended to gold/alias_history with the metrics and the reason.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Sequence

from looper_common.jobrunner import in_background, job_parser, setup
from looper_common.training.examples import load_training_frame

log = logging.getLogger("evaluate_models")


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--bootstrap", type=int, default=200, help="OPE bootstrap resamples (default 200)")
    args = parser.parse_args(argv)
    ctx = setup(args, "evaluate_models")
    blueprint = ctx.blueprints[args.blueprint]
    examples = in_background(lambda: load_training_frame(
        ctx.lake, blueprint, args.run_date, lookback_days=0), "examples")
    # MLflow, scikit-learn, matplotlib: imported while the examples load
    import mlflow
    import numpy as np

    from looper_common.decision_science import report
    from looper_common.decision_science.evaluation import (
        evaluate_policies,
        evaluation_plots,
        holdout_baseline,
        label_metrics,
        ope_metrics,
        ope_promotion,
        promotion_decision,
        qini_plot,
    )
    from looper_common.training.registry import (
        CHALLENGER,
        CHAMPION,
        alias_version,
        configure_mlflow,
        detect_reviewer_moves,
        model_name,
        move_alias,
    )

    configure_mlflow(ctx.settings, blueprint.name)
    wide = examples.result().frame
    holdout = wide[wide["matured_date"] == args.run_date]
    for label in blueprint.labels:
        name = model_name(blueprint.name, label.name)
        for move in detect_reviewer_moves(ctx.lake, name, blueprint.name, args.run_date):
            log.info("%s: reviewer moved %s (recorded)", name, move)
        challenger, champion = alias_version(name, CHALLENGER), alias_version(name, CHAMPION)
        if challenger is None or challenger == champion:
            log.info("%s: no new challenger to evaluate", name)
            continue
        if holdout.empty:
            log.warning("%s: no examples matured on %s to evaluate on", name, args.run_date)
            continue
        models = {"challenger": mlflow.sklearn.load_model(f"models:/{name}/{challenger}")}
        if champion is not None:
            models["champion"] = mlflow.sklearn.load_model(f"models:/{name}/{champion}")
        scored = {role: label_metrics(m, holdout, blueprint, label) for role, m in models.items()}
        verdict = promotion_decision(
            blueprint, scored["challenger"], scored.get("champion"), holdout_baseline(holdout, blueprint, label)
        )
        sections = [("Model metrics", report.table(
            [{"model": role, **metrics} for role, metrics in scored.items()]))]
        others = _other_policy_models(blueprint) if label.name == blueprint.objectives.maximize else {}
        if others is None:
            log.warning("%s: the %s policy needs a model of every weighted label; skipping OPE until they "
                        "are registered", name, blueprint.policy.type)
        elif label.name == blueprint.objectives.maximize:
            # both models under the blueprint's policy params: the gate compares models;
            # tune_policy then tunes the champion's params
            result = evaluate_policies(
                holdout, blueprint, {role: ({label.name: m, **others}, None) for role, m in models.items()},
                reward_model=models["challenger"], label=label.name,
                baseline="champion" if "champion" in models else "logged", n_bootstrap=args.bootstrap,
            )
            sections.append((f"Off-policy value of each model's policy ({label.name})", report.ope_section(result)))
            if blueprint.promotion.gate == "ope":
                gated = ope_promotion(blueprint, result)
                verdict = type(verdict)(gated.promote, gated.reason, {**verdict.metrics, **gated.metrics})
            else:
                verdict.metrics.update(ope_metrics(result))
        auto = blueprint.promotion.mode == "auto"
        with mlflow.start_run(run_name=f"evaluate {label.name} {args.run_date}"):
            mlflow.set_tags({
                "blueprint": blueprint.name, "blueprint_version": blueprint.version, "label": label.name,
                "run_date": str(args.run_date), "challenger_version": challenger,
                "champion_version": str(champion), "promote": str(verdict.promote and auto),
                "reason": verdict.reason,
            })
            mlflow.log_metric("holdout_rows", len(holdout))
            mlflow.log_metrics({k: v for k, v in verdict.metrics.items() if np.isfinite(v)})
            plots = evaluation_plots(models, holdout, blueprint, label)
            mlflow.log_figure(plots, f"evaluation_{label.name}.png")
            mlflow.log_dict(verdict.metrics, f"evaluation_{label.name}.json")
            sections.insert(0, ("Verdict", f"<p><b>{'promote' if verdict.promote else 'keep'}</b>: "
                                           f"{html.escape(verdict.reason)}</p>"))
            sections.append(("Calibration and scores", report.figure(plots)))
            if blueprint.policy.type == "uplift":
                qini = qini_plot(models, holdout, blueprint, label)
                mlflow.log_figure(qini, f"qini_{label.name}.png")
                sections.append(("Uplift (Qini) curve", report.figure(qini)))
            mlflow.log_text(report.html_report(
                f"{name}: challenger v{challenger} vs champion v{champion}", sections,
                {"run date": args.run_date, "held-out decisions": len(holdout),
                 "gate": blueprint.promotion.gate, "blueprint version": blueprint.version},
            ), f"report_{label.name}.html")
        log.info("%s: challenger v%s vs champion v%s: %s", name, challenger, champion, verdict.reason)
        if verdict.promote and auto:
            move_alias(
                ctx.lake, name=name, alias=CHAMPION, version=challenger, actor="evaluate_models",
                reason=verdict.reason, metrics=verdict.metrics, blueprint=blueprint.name,
                blueprint_version=blueprint.version, run_date=args.run_date,
            )
            log.info("%s: v%s promoted to champion", name, challenger)
        elif verdict.promote:
            log.info("%s: promotion.mode is manual: a reviewer can move the champion alias to v%s "
                     "in the MLflow UI (Models > %s > Aliases)", name, challenger, name)
        log.debug("metrics: %s", json.dumps(verdict.metrics))
    return 0


def _other_policy_models(blueprint) -> dict[str, object] | None:
    """Champions (else challengers) of the labels a weighted_sum policy adds; None if one is missing."""
    import mlflow

    from looper_common.decision_science.policies import policy_labels
    from looper_common.training.registry import CHALLENGER, CHAMPION, alias_version, model_name

    models = {}
    for label in policy_labels(blueprint)[1:]:
        name = model_name(blueprint.name, label)
        version = alias_version(name, CHAMPION) or alias_version(name, CHALLENGER)
        if version is None:
            return None
        models[label] = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    return models


if __name__ == "__main__":
    raise SystemExit(main())
