"""``publish_policies`` for one blueprint and run date: the registry's champion served from Redis.

The champion of ``looper.<blueprint>.<objectives.maximize>`` is published under the
params ``tune_policy`` chose (its ``policy_params`` tag; the blueprint's without it).
A ``weighted_sum`` policy needs a champion of every other label it weighs. Without
the champions the blueprint's default action keeps being served. Every move of the
active pointer is appended to ``gold/alias_history`` (``registry.live_at`` reads it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date

import mlflow

from looper_common.contracts import policy_store, redis_conn
from looper_common.contracts.blueprint import Blueprint
from looper_common.contracts.config import Settings
from looper_common.decision_science.policies import policy_labels
from looper_common.lake.engine import Lake
from looper_common.publishing.publish import (
    POLICY_PARAMS_TAG,
    TUNED_DATE_TAG,
    PublishStats,
    find_champion,
    publish_champion,
)
from looper_common.training.registry import (
    ACTIVE_POLICY,
    CHAMPION,
    alias_version,
    model_name,
    policy_pointer,
    record_pointer_move,
    recorded_alias,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishRun:
    """What one publish did: the entries written (None when nothing was) and the version now active."""

    blueprint: str
    run_date: date
    reason: str  # why nothing was published, else the champion published
    stats: PublishStats | None = None
    active: str | None = None  # the active pointer after the publish (a rollback may keep an older one)

    def summary(self) -> str:
        if self.stats is None:
            return f"{self.blueprint} on {self.run_date}: nothing published ({self.reason})"
        return f"{self.stats.summary()}; {self.reason}; active version {self.active}"


def publish_policies(settings: Settings, lake: Lake, blueprint: Blueprint, run_date: date) -> PublishRun:
    """Score every unit decided for up to the end of ``run_date`` with the champion and publish the policy.

    Entries expire after ``redis.policy_ttl_days``; the active pointer switches only
    once all are written. Rerunning with the same champion and params changes nothing.
    """
    champion = find_champion(settings.mlflow.tracking_uri, blueprint)
    if champion is None:
        name = model_name(blueprint.name, blueprint.objectives.maximize)
        log.info("no champion of %s in the registry yet: the default action %r keeps being served",
                 name, blueprint.decision.default_action)
        return PublishRun(blueprint.name, run_date, f"no champion of {name}")
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_registry_uri(settings.mlflow.tracking_uri)
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
            return PublishRun(blueprint.name, run_date, f"no champion of {other}")
        extra[label] = f"models:/{other}@{CHAMPION}"
    client = redis_conn.from_settings(settings.redis)
    stats = publish_champion(
        lake, client, blueprint, run_date, model_uri=model_uri, model_version=champion.version,
        ttl_seconds=settings.redis.policy_ttl_days * 86_400, params=params, extra_models=extra,
    )
    active = client.get(policy_store.active_key(blueprint.name))
    active = active.decode() if active else stats.version
    record_active_pointer(lake, blueprint, run_date, stats, active, f"{champion.name} v{champion.version}")
    return PublishRun(blueprint.name, run_date, f"{champion.name} v{champion.version}", stats, active)


def record_active_pointer(
    lake: Lake, blueprint: Blueprint, run_date: date, stats: PublishStats, active: str, source: str
) -> bool:
    """Append the active pointer to ``gold/alias_history`` unless the history already ends with it.

    Comparing with the history, not only trusting ``stats.switched``, also records a move
    whose row was lost (the job failed between the switch and the append) on the rerun.
    """
    recorded = recorded_alias(lake, policy_pointer(blueprint.name), ACTIVE_POLICY)
    if recorded == active:
        return False
    moved_here = stats.switched and stats.version == active
    reason = (f"published {source}" if moved_here else
              f"the active pointer was {active} while the history said {recorded}: recorded when found")
    record_pointer_move(
        lake, blueprint=blueprint.name, version=active, previous=stats.previous if moved_here else recorded,
        actor="publish_policies", reason=reason, metrics={"units": float(stats.units)} if moved_here else None,
        blueprint_version=blueprint.version, run_date=run_date,
    )
    log.info("%s: active policy %s -> %s recorded in gold/alias_history", blueprint.name, recorded, active)
    return True
