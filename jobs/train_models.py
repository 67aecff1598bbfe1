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
from looper_common.training import train_models

log = logging.getLogger("train_models")


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--lookback-days", type=int, default=28, help="days of matured examples to train on")
    parser.add_argument("--force", action="store_true", help="train again even if this date is done")
    args = parser.parse_args(argv)
    ctx = setup(args, "train_models")
    run = train_models(ctx.settings, ctx.lake, ctx.blueprints[args.blueprint], args.run_date,
                       lookback_days=args.lookback_days, force=args.force)
    log.info("done: %s", run.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
