"""``looper rollback``: move a blueprint's active pointer back one version, and record it."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Point a blueprint back at the policy version that was active before the current one.

The previous version is taken (and removed) from the blueprint's history in Redis;
it is refused when there is none or its entries have expired. SDK clients follow
within their pointer cache (1 s by default). The version left is marked so that
rerunning its publish does not bring it back, but the next day's publish_policies
publishes the champion again: move the champion alias if the model is at fault.
The move is appended to gold/alias_history (who, why), like every publish.

example:
  looper rollback --blueprint notification_send
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--blueprint", required=True, help="blueprint name, e.g. notification_send")
    parser.add_argument("--env", default=None,
                        help="settings environment (conf/<env>.yaml); default $LOOPER_ENV or local")
    parser.add_argument("--reason", default="operator rollback",
                        help="why, recorded in gold/alias_history (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Roll the blueprint's active policy back and record it; 1 when refused or failing, 2 on bad settings."""
    import getpass

    import redis

    from looper_common.contracts import redis_conn
    from looper_common.contracts.config import ConfigError, load_settings
    from looper_common.jobrunner import open_lake
    from looper_common.lake.tables import ALIAS_HISTORY
    from looper_common.publishing.pointer import RollbackError, rollback
    from looper_common.training.registry import record_pointer_move

    try:
        settings = load_settings(args.env)
    except ConfigError as err:
        print(f"looper rollback: error: {err}", file=sys.stderr)
        return 2
    try:  # the record's table is reachable before the pointer moves: no move is left unrecorded
        lake = open_lake(settings, "looper-rollback")
        lake.version(ALIAS_HISTORY)
    except Exception as err:
        print(f"looper rollback: error: gold/alias_history cannot be reached, nothing was moved: "
              f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    client = redis_conn.from_settings(settings.redis)
    try:
        left, restored = rollback(client, args.blueprint)
    except (RollbackError, redis.RedisError) as err:
        print(f"looper rollback: error: {err}", file=sys.stderr)
        return 1
    print(f"{args.blueprint}: active policy {left} -> {restored}")
    try:
        record_pointer_move(lake, blueprint=args.blueprint, version=restored,
                            previous=left, actor=f"looper rollback ({getpass.getuser()})", reason=args.reason)
    except Exception as err:  # the rollback stands; say loudly that its record is missing
        print(f"looper rollback: error: rolled back, but not recorded in gold/alias_history: "
              f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0
