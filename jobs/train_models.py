"""Train, tune and register one model per label of a blueprint (hyperopt TPE, MLflow).

Reads the blueprint's silver examples matured up to --run-date (a lookback window),
trains on the older ones and validates on the run date's, picks the model family and
its parameters with hyperopt, logs one parent MLflow run with a nested run per trial,
registers the best model as looper.<blueprint>.<label> and points the challenger
alias at it. A rerun for the same date and blueprint version keeps what it made.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from looper_common.jobrunner import job_parser, setup
from looper_common.spark import in_background, start_spark
from looper_common.tables import SILVER_EXAMPLES
from looper_common.training_data import load_training_frame

log = logging.getLogger("train_models")


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--lookback-days", type=int, default=28, help="days of matured examples to train on")
    parser.add_argument("--force", action="store_true", help="train again even if this date is done")
    args = parser.parse_args(argv)
    ctx = setup(args, "train_models")
    blueprint = ctx.blueprints[args.blueprint]
    session = start_spark(ctx.settings, "train_models")
    examples = in_background(lambda: load_training_frame(
        session.result(), ctx.lake, blueprint, args.run_date, args.lookback_days), "examples")
    # MLflow, scikit-learn, hyperopt: imported while the session starts and the examples load
    import mlflow

    from looper_common.registry import CHALLENGER, configure_mlflow, move_alias
    from looper_common.training import git_sha, train_blueprint

    spark, wide = session.result(), examples.result()
    log.info("%d matured examples for %s up to %s", len(wide), blueprint.name, args.run_date)
    if wide.empty:
        log.warning("no matured examples yet: nothing to train, the default action stays in place")
        return 0
    configure_mlflow(ctx.settings, blueprint.name)
    tags = {
        "blueprint": blueprint.name,
        "blueprint_version": blueprint.version,
        "run_date": str(args.run_date),
        "git_sha": git_sha(ctx.settings.home),
        "delta.silver_examples.version": str(ctx.lake.version(spark, SILVER_EXAMPLES)),
    }
    with mlflow.start_run(run_name=f"train {args.run_date}", tags=tags):
        results = train_blueprint(wide, blueprint, args.run_date, tags, force=args.force)
    for result in results:
        move_alias(
            spark, ctx.lake, name=result.model_name, alias=CHALLENGER, version=result.version,
            actor="train_models", reason=(
                f"best held-out Qini of the S-, T-, X- and DR-learners ({result.family})"
                if blueprint.policy.type == "uplift"
                else f"best of {blueprint.model.tuning.max_evals} trials ({result.family})"
            ),
            metrics=result.metrics, blueprint=blueprint.name, blueprint_version=blueprint.version,
            run_date=args.run_date,
        )
        log.info("%s v%s is the challenger", result.model_name, result.version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
