"""Publish the champion's policy for every known unit to Redis.

For --run-date D, takes every unit decided for up to the end of D with its latest
logged features, scores it with the registry's champion of
``looper.<blueprint>.<objectives.maximize>``, writes one entry per unit under a new
version (``<D>-m<model version>-<blueprint version>``, expiring after
``redis.policy_ttl_days``) and only then switches the blueprint's active pointer to
it. Without a champion the default action keeps being served. Idempotent: rerunning
for D with the same champion rewrites the same entries and changes nothing else.
Prints the active version.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import mlflow
import redis

from looper_common import policy_store
from looper_common.jobrunner import job_parser, setup
from looper_common.publishing import find_champion, publish_champion
from looper_common.registry import model_name
from looper_common.spark import get_spark

log = logging.getLogger("publish_policies")


def main(argv: Sequence[str] | None = None) -> int:
    args = job_parser(__doc__).parse_args(argv)
    ctx = setup(args, "publish_policies")
    blueprint = ctx.blueprints[args.blueprint]
    champion = find_champion(ctx.settings.mlflow.tracking_uri, blueprint)
    if champion is None:
        log.info("no champion of %s in the registry yet: the default action %r keeps being served",
                 model_name(blueprint.name, blueprint.objectives.maximize),
                 blueprint.decision.default_action)
        return 0
    mlflow.set_tracking_uri(ctx.settings.mlflow.tracking_uri)
    mlflow.set_registry_uri(ctx.settings.mlflow.tracking_uri)
    model_uri = f"models:/{champion.name}/{champion.version}"
    client = redis.Redis.from_url(ctx.settings.redis.url, password=ctx.settings.redis.password)
    stats = publish_champion(
        get_spark(ctx.settings, "publish_policies"), ctx.lake, client, blueprint, args.run_date,
        model_uri=model_uri, model_version=champion.version,
        ttl_seconds=ctx.settings.redis.policy_ttl_days * 86_400,
    )
    active = client.get(policy_store.active_key(blueprint.name))
    print(active.decode() if active else stats.version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
