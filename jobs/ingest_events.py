"""Drain the Redis event streams into bronze Delta tables (exactly-once effect).

Valid events go to bronze/decisions and bronze/observations, each event_id once; every
other entry goes to quarantine/events with its reason. Entries are acknowledged and
trimmed only after the commit, so the job can be killed and rerun at any time (delta-rs,
no Spark session). Each blueprint's watermark then goes to monitoring/ingest_watermark.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from looper_common.contracts import redis_conn
from looper_common.ingest import event_streams, ingest_events
from looper_common.ingest.watermark import record_watermarks
from looper_common.jobrunner import job_parser, setup

log = logging.getLogger("ingest_events")


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser(__doc__, blueprint_required=False, with_run_date=False)
    parser.add_argument("--batch-size", type=int, default=None, help="events per Delta commit")
    args = parser.parse_args(argv)
    ctx = setup(args, "ingest_events")
    client = redis_conn.from_settings(ctx.settings.redis)
    streams = event_streams(client, args.blueprint)
    if streams:
        log.info("draining %d stream(s): %s", len(streams), ", ".join(streams))
        stats = ingest_events(client, ctx.lake, ctx.blueprints, streams=streams,
                              batch_size=args.batch_size or ctx.settings.redis.ingest_batch_size,
                              limits=ctx.settings.ingest.limits,
                              duplicate_horizon_days=ctx.settings.ingest.duplicate_horizon_days)
        log.info("done: %s", stats.summary())
    else:
        log.info("no event streams to drain%s", f" for {args.blueprint}" if args.blueprint else "")
    record_watermarks(client, ctx.lake, [args.blueprint] if args.blueprint else sorted(ctx.blueprints))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
