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

from looper_common.jobrunner import in_background, job_parser, setup
from looper_common.training.examples import load_training_frame

log = logging.getLogger("train_models")


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--lookback-days", type=int, default=28, help="days of matured examples to train on")
    parser.add_argument("--force", action="store_true", help="train again even if this date is done")
    args = parser.parse_args(argv)
    ctx = setup(args, "train_models")
    blueprint = ctx.blueprints[args.blueprint]
    examples = in_background(lambda: load_training_frame(
        ctx.lake, blueprint, args.run_date, args.lookback_days), "examples")
    # MLflow, scikit-learn, hyperopt: imported while the examples load
    import mlflow

    from looper_common.training.registry import CHALLENGER, configure_mlflow, move_alias
    from looper_common.training.train import git_sha, train_blueprint

    loaded = examples.result()
    wide = loaded.frame
    log.info("%d matured examples for %s up to %s (silver/examples v%d, read by %s)",
             len(wide), blueprint.name, args.run_date, loaded.version, loaded.engine)
    if wide.empty:
        log.warning("no matured examples yet: nothing to train, the default action stays in place")
        return 0
    configure_mlflow(ctx.settings, blueprint.name)
    tags = {
        "blueprint": blueprint.name,
        "blueprint_version": blueprint.version,
        "run_date": str(args.run_date),
        "git_sha": git_sha(ctx.settings.home),
        "delta.silver_examples.version": str(loaded.version),
    }
    with mlflow.start_run(run_name=f"train {args.run_date}", tags=tags):
        results = train_blueprint(wide, blueprint, args.run_date, tags, force=args.force)
    for result in results:
        move_alias(
            ctx.lake, name=result.model_name, alias=CHALLENGER, version=result.version,
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
