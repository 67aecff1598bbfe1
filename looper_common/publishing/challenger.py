"""Publishing the objective's challenger beside the champion, for ``promotion.stage: shadow | canary``.

The challenger is published as any version is (entries, and the compact model when
the blueprint serves online), but the active pointer does not move; the key
``policy_store.challenger_key`` then tells the SDK its version, its stage and the
canary's share. Without a stage, or without a challenger other than the champion,
the key is deleted, so the SDK stops scoring or serving an old one on its next
refresh. A policy over several models (``weighted_sum``) has no single challenger
and is never staged.
"""

from __future__ import annotations

import json
import logging
from datetime import date

import redis

from looper_common.contracts import policy_store
from looper_common.contracts.blueprint import Blueprint
from looper_common.lake.engine import Lake
from looper_common.publishing.publish import publish_champion

log = logging.getLogger(__name__)


def challenger_document(version: str, blueprint: Blueprint) -> bytes:
    """The value of ``challenger_key``: what the SDK needs to shadow or canary ``version``."""
    canary = blueprint.promotion.canary
    doc = {"version": version, "stage": blueprint.promotion.stage, "share": canary.share if canary else None}
    return json.dumps(doc, sort_keys=True).encode()


def publish_challenger(
    lake: Lake, client: redis.Redis, blueprint: Blueprint, run_date: date, *, champion_version: str,
    ttl_seconds: int, redis_url: str, password_env: str = "LOOPER_REDIS_PASSWORD",
) -> str | None:
    """Publish the registry's challenger for the blueprint's stage; returns its policy version or None."""
    from looper_common.decision_science.policies import policy_labels
    from looper_common.training.registry import CHALLENGER, alias_version, model_name

    key = policy_store.challenger_key(blueprint.name)
    stage = blueprint.promotion.stage
    name = model_name(blueprint.name, blueprint.objectives.maximize)
    challenger = alias_version(name, CHALLENGER) if stage != "none" else None
    if challenger is None or challenger == str(champion_version) or len(policy_labels(blueprint)) > 1:
        if stage != "none":
            log.info("%s: stage %s but no single challenger other than the champion: none staged",
                     blueprint.name, stage)
        client.delete(key)
        return None
    stats = publish_champion(lake, client, blueprint, run_date, model_uri=f"models:/{name}/{challenger}",
                             model_version=challenger, ttl_seconds=ttl_seconds, redis_url=redis_url,
                             password_env=password_env, switch=False)
    client.set(key, challenger_document(stats.version, blueprint), ex=ttl_seconds)
    log.info("%s: challenger %s v%s published as %s (%s)", blueprint.name, name, challenger, stats.version, stage)
    return stats.version
