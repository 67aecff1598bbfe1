"""Publish the champion's policy for every known unit to Redis.

For --run-date D, takes every unit decided for up to the end of D with its latest
logged features, scores it with the registry's champion of
``looper.<blueprint>.<objectives.maximize>`` under the policy params tune_policy chose
(the champion's ``policy_params`` tag; the blueprint's without it), writes one
entry per unit under a new version (``<D>-m<model version>-<blueprint version>``,
plus ``-p<params hash>`` for tuned params; expiring after ``redis.policy_ttl_days``)
with the exploration the SDK must apply in the version's meta hash, and only then
switches the blueprint's active pointer to it. Without a champion the default action
keeps being served. Idempotent: rerunning for D with the same champion and params
rewrites the same entries and changes nothing else.
Prints the active version.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from looper_common.jobrunner import job_parser, setup
from looper_common.publishing import publish_policies

log = logging.getLogger("publish_policies")


def main(argv: Sequence[str] | None = None) -> int:
    args = job_parser(__doc__).parse_args(argv)
    ctx = setup(args, "publish_policies")
    run = publish_policies(ctx.settings, ctx.lake, ctx.blueprints[args.blueprint], args.run_date)
    log.info("done: %s", run.summary())
    if run.active is not None:
        print(run.active)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
