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

import logging
from collections.abc import Sequence

from looper_common.decision_science import evaluate_models
from looper_common.jobrunner import job_parser, setup

log = logging.getLogger("evaluate_models")


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--bootstrap", type=int, default=200, help="OPE bootstrap resamples (default 200)")
    args = parser.parse_args(argv)
    ctx = setup(args, "evaluate_models")
    run = evaluate_models(ctx.settings, ctx.lake, ctx.blueprints[args.blueprint], args.run_date,
                          n_bootstrap=args.bootstrap)
    log.info("done: %s", run.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
