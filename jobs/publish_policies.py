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

import json
import logging
from collections.abc import Sequence

import mlflow
import redis

from looper_common.contracts import policy_store
from looper_common.decision_science.policies import policy_labels
from looper_common.jobrunner import in_background, job_parser, setup
from looper_common.publishing.publish import (
    POLICY_PARAMS_TAG,
    TUNED_DATE_TAG,
    find_champion,
    publish_champion,
)
from looper_common.publishing.units import load_units
from looper_common.training.registry import CHAMPION, alias_version, model_name

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
    params = json.loads(champion.tags[POLICY_PARAMS_TAG]) if POLICY_PARAMS_TAG in champion.tags else None
    if params is not None:
        log.info("serving the tuned policy params %s (tune_policy, %s)", params, champion.tags.get(TUNED_DATE_TAG))
    extra = {}
    for label in policy_labels(blueprint, params)[1:]:
        other = model_name(blueprint.name, label)
        if alias_version(other, CHAMPION) is None:
            log.error("the %s policy needs a champion of %s; none yet, so the default keeps being served",
                      blueprint.policy.type, other)
            return 0
        extra[label] = f"models:/{other}@{CHAMPION}"
    client = redis.Redis.from_url(ctx.settings.redis.url, password=ctx.settings.redis.password)
    units = in_background(lambda: load_units(ctx.lake, blueprint, args.run_date), "units")
    stats = publish_champion(
        ctx.lake, client, blueprint, args.run_date,
        model_uri=model_uri, model_version=champion.version,
        ttl_seconds=ctx.settings.redis.policy_ttl_days * 86_400, params=params, extra_models=extra, units=units,
    )
    active = client.get(policy_store.active_key(blueprint.name))
    print(active.decode() if active else stats.version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
