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

import logging
from collections.abc import Sequence

from looper_common.decision_science import tune_policy
from looper_common.jobrunner import job_parser, setup

log = logging.getLogger("tune_policy")


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--max-evals", type=int, default=None, help="trials (default: policy.tuning.max_evals)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the final estimates")
    parser.add_argument("--force", action="store_true", help="tune again even if this date is done")
    args = parser.parse_args(argv)
    ctx = setup(args, "tune_policy")
    run = tune_policy(ctx.settings, ctx.lake, ctx.blueprints[args.blueprint], args.run_date,
                      max_evals=args.max_evals, n_bootstrap=args.bootstrap, force=args.force)
    log.info("done: %s", run.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
