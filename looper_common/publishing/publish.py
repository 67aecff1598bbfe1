"""Publishing the champion's policy (DESIGN.md §6): load every known unit, score it, publish.

The champion scores every known unit from its latest logged features
(``scoring.score_and_write``, on the driver or on Spark's executors by the lake's size
rule), the entries go to Redis from where they were scored, and only then does
``redis_policy.publish_entries`` switch the active pointer, atomically, on the driver
(``redis_policy`` also holds rollback).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING

import redis

from looper_common.contracts.blueprint import Blueprint
from looper_common.lake.engine import Lake
from looper_common.publishing.redis_policy import PublishStats, publish_entries

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)
POLICY_PARAMS_TAG = "policy_params"  # champion model version tag: tuned params (JSON), set by tune_policy
TUNED_DATE_TAG = "policy_tuned_date"


def policy_version(
    run_date: date, model_version: str | int, blueprint: Blueprint, params: Mapping[str, object] | None = None
) -> str:
    """Deterministic, so rerunning for the same interval, model and params gives the same version.

    Tuned params add a short hash of their JSON: other params are another version, never
    a rewrite of the active one under readers' feet.
    """
    version = f"{run_date:%Y%m%d}-m{model_version}-{blueprint.version[:6]}"
    if params:
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:6]
        version += f"-p{digest}"
    return version


def model_version_of(version: str | None) -> str | None:
    """The model version in a :func:`policy_version` (``20260301-m7-abc123`` -> ``7``), None if none."""
    parts = (version or "").split("-")
    return parts[1][1:] if len(parts) > 2 and parts[1].startswith("m") else None


def find_champion(tracking_uri: str, blueprint: Blueprint) -> ModelVersion | None:
    """The registry's champion version of the blueprint's model, or None when there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from looper_common.training.registry import CHAMPION, model_name

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name = model_name(blueprint.name, blueprint.objectives.maximize)
    try:
        model = client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if CHAMPION not in (model.aliases or {}):
        return None
    return client.get_model_version_by_alias(name, CHAMPION)


def publish_champion(
    lake: Lake,
    client: redis.Redis,
    blueprint: Blueprint,
    run_date: date,
    *,
    model_uri: str,
    model_version: str | int,
    ttl_seconds: int,
    redis_url: str,
    password_env: str = "LOOPER_REDIS_PASSWORD",
    params: Mapping[str, object] | None = None,
    extra_models: Mapping[str, str] | None = None,
    switch: bool = True,
) -> PublishStats:
    """Score every known unit with the model at ``model_uri`` and publish the policy.

    The units' latest features are read and scored, and their entries written to
    ``redis_url``, by :func:`scoring.score_and_write` through ``Lake.map_groups``: in this
    process on a small lake, on Spark's executors (the models broadcast) on a large one;
    ``client`` (the same Redis) writes the meta hash and switches the pointer here, once
    every entry is in. ``params`` are tuned policy params (see ``policies``); their
    exploration part goes to the version's meta hash, where the SDK reads it.
    ``extra_models`` maps other labels to model URIs, for a ``weighted_sum`` policy.
    ``switch=False`` publishes the version without moving the pointer (a challenger).
    """
    from looper_common.contracts.redis_conn import is_cluster
    from looper_common.decision_science.policies import exploration_spec
    from looper_common.lake.engine import blueprint_dates
    from looper_common.lake.tables import BRONZE_DECISIONS
    from looper_common.publishing.compact_model import publish_for_serving
    from looper_common.publishing.scoring import WRITE_COUNTS, ScoringJob, score_and_write
    from looper_common.publishing.units import UNIT_COLUMNS
    from looper_common.training.registry import load_model

    started = time.perf_counter()
    models = {blueprint.objectives.maximize: load_model(model_uri)}
    models.update({label: load_model(uri) for label, uri in (extra_models or {}).items()})
    log.info("%s: %d model(s) loaded (%.1f s)", blueprint.name, len(models), time.perf_counter() - started)
    version = policy_version(run_date, model_version, blueprint, params)
    job = ScoringJob(blueprint, run_date, models, params, version, ttl_seconds, redis_url, password_env,
                     cluster=is_cluster(client))

    def write_all() -> tuple[int, int]:
        counts = lake.map_groups(
            BRONZE_DECISIONS, score_and_write, key="unit_id", schema=WRITE_COUNTS, shared=job,
            filters=blueprint_dates(blueprint.name, last=run_date), columns=UNIT_COLUMNS,
        )
        entries = int(pc_sum(counts["entries"]))
        if entries == 0:
            raise ValueError(f"{blueprint.name}: no decisions up to {run_date}; nothing to publish")
        return entries, int(pc_sum(counts["batches"]))

    meta = {"model_uri": model_uri, "model_version": model_version, "run_date": run_date,
            "policy_params": json.dumps(dict(params or blueprint.policy.params), sort_keys=True)}
    meta.update(publish_for_serving(client, blueprint, version, models, params, ttl_seconds=ttl_seconds))
    return publish_entries(client, blueprint, write_all, version=version, ttl_seconds=ttl_seconds, meta=meta,
                           exploration=exploration_spec(blueprint, params), switch=switch)


def pc_sum(column) -> int:
    """The sum of an Arrow integer column (0 when empty)."""
    import pyarrow.compute as pc

    return pc.sum(column).as_py() or 0
