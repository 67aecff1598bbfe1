"""Validate a blueprint's training set for a run date with Great Expectations; stop the run if bad.

For --run-date D, validates the wide table of every example matured up to and including
D against a suite derived from the blueprint (schema, not-null, category, action,
propensity and label domains, numeric ranges learned from the examples before D, a
minimum row count, freshness). The validation result JSON and the Data Docs go to
<home>/var/validation/<blueprint>/<D>/ (replaced on rerun). Exit code 0 when every
expectation passed, 1 otherwise, with each failed expectation and its column on stderr,
so the DAG stops before training on bad data.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from looper_common.jobrunner import job_parser, setup

log = logging.getLogger("validate_training_set")


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--min-rows", type=int, default=50, help="fail below this many rows (default 50)")
    parser.add_argument("--lookback-days", type=int, default=None,
                        help="validate only the examples matured in the last N days (default: all of them)")
    args = parser.parse_args(argv)
    ctx = setup(args, "validate_training_set")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # one INFO line per registered method
    from looper_common.validation import validate_training_set  # Great Expectations: after the arguments
    output_dir = Path(ctx.settings.home, "var", "validation", args.blueprint, str(args.run_date))
    report = validate_training_set(ctx.lake, ctx.blueprints[args.blueprint], args.run_date, min_rows=args.min_rows,
                                   output_dir=output_dir, lookback_days=args.lookback_days)
    print(f"validation result: {report.result_path}\ndata docs: {report.data_docs_path}")
    log.log(logging.INFO if report.success else logging.ERROR, report.message)
    if not report.success:
        print(report.message, file=sys.stderr)
    return 0 if report.success else 1


if __name__ == "__main__":
    raise SystemExit(main())
