"""Tune the champion's policy parameters for the blueprint's objective, under its guardrails.

For --blueprint and --run-date D: takes the decisions that matured on D (logged with
their propensities), scores them with the champion model(s), and lets hyperopt (TPE)
search the policy's parameters (threshold, offsets, weighted_sum weights, exploration
rate within policy.tuning.explore). Each trial's objective is the doubly robust
off-policy estimate; guardrails (objectives.guardrails) make a trial infeasible. One
MLflow parent run with a nested run per trial; a Pareto plot (objective vs the main
guardrail) and report_policy.html as artifacts. The chosen parameters are written as
the `policy_params` tag of the champion model version; publish_policies serves them.
Without a champion, or with no decisions matured on D, it does nothing. A rerun for
the same D and champion keeps what the first run chose (--force tunes again).
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Sequence

from looper_common.jobrunner import in_background, job_parser, setup
from looper_common.publishing.publish import POLICY_PARAMS_TAG, TUNED_DATE_TAG, find_champion
from looper_common.training.examples import load_training_frame
from looper_common.training.registry import model_name

log = logging.getLogger("tune_policy")


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--max-evals", type=int, default=None, help="trials (default: policy.tuning.max_evals)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the final estimates")
    parser.add_argument("--force", action="store_true", help="tune again even if this date is done")
    args = parser.parse_args(argv)
    ctx = setup(args, "tune_policy")
    blueprint = ctx.blueprints[args.blueprint]
    champion = find_champion(ctx.settings.mlflow.tracking_uri, blueprint)
    if champion is None:
        log.info("no champion of %s yet: nothing to tune", model_name(blueprint.name, blueprint.objectives.maximize))
        return 0
    if champion.tags.get(TUNED_DATE_TAG) == str(args.run_date) and not args.force:
        log.info("%s v%s was already tuned for %s: %s (use --force to tune again)", champion.name,
                 champion.version, args.run_date, champion.tags.get(POLICY_PARAMS_TAG))
        return 0
    examples = in_background(lambda: load_training_frame(
        ctx.lake, blueprint, args.run_date, lookback_days=0), "examples")
    # hyperopt, scikit-learn (loading the models), matplotlib: imported while the examples load
    import mlflow
    import numpy as np

    from looper_common.decision_science import report
    from looper_common.decision_science.policies import policy_labels
    from looper_common.decision_science.policy_tuning import flat_params, pareto_figure, tune
    from looper_common.training.registry import CHAMPION, alias_version, configure_mlflow

    configure_mlflow(ctx.settings, blueprint.name)
    wide = examples.result().frame
    holdout = wide[wide["matured_date"] == args.run_date]
    if holdout.empty:
        log.warning("no decisions matured on %s: nothing to tune on", args.run_date)
        return 0
    models = {}
    labels = set(policy_labels(blueprint)) | {g.metric for g in blueprint.objectives.guardrails}
    for label in sorted(labels):
        name = model_name(blueprint.name, label)
        if label in {lb.name for lb in blueprint.labels} and alias_version(name, CHAMPION) is not None:
            models[label] = mlflow.sklearn.load_model(f"models:/{name}@{CHAMPION}")
    log.info("tuning %s v%s on %d decisions matured on %s (models of %s)", champion.name, champion.version,
             len(holdout), args.run_date, sorted(models))
    tags = {"blueprint": blueprint.name, "blueprint_version": blueprint.version, "run_date": str(args.run_date),
            "champion_version": str(champion.version), "job": "tune_policy"}
    with mlflow.start_run(run_name=f"tune_policy {args.run_date}", tags=tags) as parent:
        def log_trial(trial) -> None:
            with mlflow.start_run(run_name=f"trial {trial.number}", nested=True, tags=tags):
                mlflow.log_params({k: round(v, 6) for k, v in flat_params(trial.params).items()})
                mlflow.log_metrics({"objective": trial.objective, "feasible": float(trial.feasible),
                                    **{f"guardrail.{k}": v for k, v in trial.guardrails.items()}})

        result = tune(holdout, blueprint, models, max_evals=args.max_evals, seed=_seed(args.run_date),
                      n_bootstrap=args.bootstrap, on_trial=log_trial)
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
            ], {"run date": args.run_date, "decisions": len(holdout), "trials": len(result.trials)},
        ), "report_policy.html")
        run_id = parent.info.run_id
    client = mlflow.MlflowClient()
    client.set_model_version_tag(champion.name, champion.version, POLICY_PARAMS_TAG, json.dumps(result.params))
    client.set_model_version_tag(champion.name, champion.version, TUNED_DATE_TAG, str(args.run_date))
    client.set_model_version_tag(champion.name, champion.version, "policy_tuning_run_id", run_id)
    log.info("%s v%s: policy params %s (%s; DR lift %+.4f over the blueprint's, interval %+.4f..%+.4f)",
             champion.name, champion.version, json.dumps(result.params),
             "tuned" if result.tuned else "kept", lift.value, lift.lower, lift.upper)
    return 0


def _seed(run_date) -> int:
    return int(run_date.strftime("%Y%m%d"))


if __name__ == "__main__":
    raise SystemExit(main())
