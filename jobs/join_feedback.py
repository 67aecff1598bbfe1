"""Join decisions with their delayed feedback into labelled training examples.

For --run-date D, takes the blueprint's decisions whose label windows all closed
during D, aggregates the observations inside each label window (the label's default
when none arrived) and replaces silver/examples for (blueprint, D). Observations of D
that came after their window are counted as late; those whose decision is unknown
are counted and kept aside in quarantine/events. Statistics go to
monitoring/join_stats. Then the days of the blueprint's late_horizon before D are
checked for feedback that arrived after their examples were written: counted per
label (late_after_join), or with late_feedback: relabel written into those examples.
Idempotent: rerunning for D gives the same tables.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from looper_common.jobrunner import job_parser, setup
from looper_common.labels import join_feedback

log = logging.getLogger("join_feedback")


def main(argv: Sequence[str] | None = None) -> int:
    args = job_parser(__doc__).parse_args(argv)
    ctx = setup(args, "join_feedback")
    stats = join_feedback(ctx.lake, ctx.blueprints[args.blueprint], args.run_date)
    log.info("join statistics: %s", json.dumps(stats, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
