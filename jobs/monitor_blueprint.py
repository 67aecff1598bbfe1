"""Monitor one blueprint's loop for a run date: drift, serving health, data flow, online value, alerts.

For --run-date D, measures the day's decisions against a reference window (feature,
score and label drift, missing values, unseen categories), the serving health
(versions, defaults and why, logged propensities, replayed draws), the feedback flow
(feedback and watermark freshness, delays, late, orphan and quarantined rates, stream
backlog, Redis memory, events the SDK dropped) and the realized reward per policy version next to its OPE promise, and
replaces D's partitions of monitoring/drift, serving, freshness, online_value and
alerts. Thresholds come from the blueprint's ``monitoring:`` section. Exits non-zero
when an alert is critical (the rows are written first); warnings are logged only.
Prints the day's summary line. Idempotent: rerunning for D gives the same tables.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from looper_common.jobrunner import job_parser, setup
from looper_common.monitoring import monitor_blueprint

log = logging.getLogger("monitor_blueprint")


def main(argv: Sequence[str] | None = None) -> int:
    args = job_parser(__doc__).parse_args(argv)
    ctx = setup(args, "monitor_blueprint")
    run = monitor_blueprint(ctx.settings, ctx.lake, ctx.blueprints[args.blueprint], args.run_date)
    print(f"monitor {args.blueprint} {args.run_date}: {run.summary()}; dashboard {run.dashboard}")
    if run.critical:
        print(f"monitor_blueprint: {run.critical_message()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
