"""Compare challenger and champion on the newest held-out period and apply the promotion rule.

For each label of --blueprint: records alias moves made by reviewers since the last
run, scores champion and challenger on the examples that matured on --run-date
(model metrics, the constant baseline, and the IPS value of the policy each would
produce on the logged decisions), logs metrics and plots to an MLflow run, and with
`promotion.mode: auto` moves the champion alias when the rule says so. Every move is
appended to gold/alias_history.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from looper_common.jobrunner import job_parser, setup
from looper_common.spark import start_spark
from looper_common.tables import SILVER_EXAMPLES

log = logging.getLogger("evaluate_models")


def main(argv: Sequence[str] | None = None) -> int:
    args = job_parser(__doc__).parse_args(argv)
    ctx = setup(args, "evaluate_models")
    blueprint = ctx.blueprints[args.blueprint]
    session = start_spark(ctx.settings, "evaluate_models", lambda s: ctx.lake.exists(s, SILVER_EXAMPLES))
    # MLflow, scikit-learn, matplotlib: imported while the session starts
    import mlflow
    import numpy as np
    import pandas as pd

    from looper_common.evaluation import evaluation_plots, holdout_baseline, label_metrics, promotion_decision
    from looper_common.registry import (
        CHALLENGER,
        CHAMPION,
        alias_version,
        configure_mlflow,
        detect_reviewer_moves,
        model_name,
        move_alias,
    )
    from looper_common.training import load_training_frame

    spark = session.result()
    configure_mlflow(ctx.settings, blueprint.name)
    wide = load_training_frame(spark, ctx.lake, blueprint, args.run_date, lookback_days=0)
    holdout: pd.DataFrame = wide[wide["matured_date"] == args.run_date]
    for label in blueprint.labels:
        name = model_name(blueprint.name, label.name)
        for move in detect_reviewer_moves(spark, ctx.lake, name, blueprint.name, args.run_date):
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
            mlflow.log_figure(evaluation_plots(models, holdout, blueprint, label), f"evaluation_{label.name}.png")
            mlflow.log_dict(verdict.metrics, f"evaluation_{label.name}.json")
        log.info("%s: challenger v%s vs champion v%s: %s", name, challenger, champion, verdict.reason)
        if verdict.promote and auto:
            move_alias(
                spark, ctx.lake, name=name, alias=CHAMPION, version=challenger, actor="evaluate_models",
                reason=verdict.reason, metrics=verdict.metrics, blueprint=blueprint.name,
                blueprint_version=blueprint.version, run_date=args.run_date,
            )
            log.info("%s: v%s promoted to champion", name, challenger)
        elif verdict.promote:
            log.info("%s: promotion.mode is manual: a reviewer can move the champion alias to v%s "
                     "in the MLflow UI (Models > %s > Aliases)", name, challenger, name)
        log.debug("metrics: %s", json.dumps(verdict.metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
