"""``looper import-logs``: its arguments and how it runs (an entry of ``looper_common.cli.COMMANDS``)."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Import logged decisions (from another system: an earlier bandit, a randomized
experiment) into bronze, with their actions and propensities.

FILE is Parquet (.parquet) or CSV with a header, one row per decision: unit,
timestamp, action, propensity, the features (a JSON column `features` or one
`feature_<name>` column each), optionally decision_id, action_probs (JSON),
policy_version and observations `obs_<name>` (with `obs_<name>_ts`; default one second
after the decision). docs/import-logs.md has the schema. Rows become events on the
blueprint's stream and go through ingestion: a bad row is quarantined with its reason
(quarantine/events), an event already in bronze is not added again. Then run
join_feedback for the days printed (--join does it here) to get training examples.
Exit status: 0 imported (quarantined rows are counted, not an error); 2 a bad file,
bad settings, an unknown blueprint or Redis unreachable.

example:
  looper import-logs --blueprint notification_send --join var/sample_logs.csv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--blueprint", required=True, help="blueprint the decisions belong to")
    parser.add_argument("file", metavar="FILE", help="Parquet or CSV file of logged decisions")
    parser.add_argument("--join", action="store_true",
                        help="also run join_feedback for every day the decisions mature on (starts Spark)")
    parser.add_argument("--env", default=None,
                        help="settings environment (conf/<env>.yaml); default $LOOPER_ENV or local")


def run(args: argparse.Namespace) -> int:
    """Import one file of logged decisions; 2 when the file, the blueprint or the settings are wrong."""
    from datetime import timedelta

    import redis

    from looper_common.contracts import redis_conn
    from looper_common.ingest.import_logs import LogFileError, import_logs
    from looper_common.jobrunner import JobContext, setup

    try:
        ctx: JobContext = setup(args, "looper import-logs")
    except SystemExit as err:  # bad settings or an unknown blueprint: setup's one line
        print(err, file=sys.stderr)
        return 2
    try:
        client = redis_conn.from_settings(ctx.settings.redis)
        stats = import_logs(client, ctx.lake, ctx.blueprints, args.blueprint, args.file,
                            batch_size=ctx.settings.redis.ingest_batch_size)
    except (LogFileError, redis.RedisError) as err:
        print(f"looper import-logs: error: {err}", file=sys.stderr)
        return 2
    print(f"{args.blueprint}: {stats.summary()}")
    if stats.first_date is None:
        return 0
    blueprint = ctx.blueprints[args.blueprint]
    last_mature = stats.last_date + timedelta(days=1 + blueprint.max_window_seconds // 86_400)
    days = [stats.first_date + timedelta(days=n) for n in range((last_mature - stats.first_date).days + 1)]
    if not args.join:
        print(f"next: join_feedback for {days[0]} .. {days[-1]} (looper submit join_feedback --blueprint "
              f"{args.blueprint} --run-date D, or rerun with --join)")
        return 0
    from looper_common.labels import join_feedback

    for day in days:
        joined = join_feedback(ctx.lake, blueprint, day)
        print(f"join_feedback {day}: {joined['examples']} examples, {joined['matured_decisions']} matured decisions")
    return 0
