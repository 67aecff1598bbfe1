"""Publishing the champion's policy (DESIGN.md §6): load every known unit, score it, publish.

The champion scores every known unit from its latest logged features; the policy
frame goes to ``redis_policy.publish_policy``, which writes the version's entries and
then switches the active pointer atomically (``redis_policy`` also holds rollback).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from concurrent.futures import Future
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd
import redis

from looper_common.contracts.blueprint import Blueprint
from looper_common.jobrunner import in_background
from looper_common.lake.engine import Lake
from looper_common.publishing.redis_policy import BATCH_PREFIX, PublishStats, publish_policy

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)
SCORING_CHUNK = 200_000
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
    params: Mapping[str, object] | None = None,
    extra_models: Mapping[str, str] | None = None,
    units: Future[pd.DataFrame] | None = None,
) -> PublishStats:
    """Score every known unit with the model at ``model_uri`` and publish the policy.

    ``params`` are tuned policy params (see ``policies``); their exploration part is
    written to the version's meta hash, where the SDK reads it. ``extra_models`` maps
    other labels to model URIs, for a ``weighted_sum`` policy. ``units`` is
    :func:`load_units` already started in the background (see ``jobs/publish_policies.py``).
    """
    from looper_common.decision_science.policies import exploration_spec, policy_frame
    from looper_common.publishing.compact_model import publish_for_serving
    from looper_common.publishing.units import load_units
    from looper_common.training.registry import load_model

    started = time.perf_counter()
    if units is None:
        units = in_background(lambda: load_units(lake, blueprint, run_date), "units")
    # the models load (scikit-learn, skops: seconds of imports) while the features are read
    models = {blueprint.objectives.maximize: load_model(model_uri)}
    models.update({label: load_model(uri) for label, uri in (extra_models or {}).items()})
    wide = units.result()
    if wide.empty:
        raise ValueError(f"{blueprint.name}: no decisions up to {run_date}; nothing to publish")
    log.info("%s: features of %d units loaded and %d model(s) (%.1f s)",
             blueprint.name, len(wide), len(models), time.perf_counter() - started)
    started, frames = time.perf_counter(), []
    for lo in range(0, len(wide), SCORING_CHUNK):
        chunk = wide.iloc[lo:lo + SCORING_CHUNK]
        frame = policy_frame(models, chunk, blueprint, params)
        if blueprint.serving.mode == "hybrid":  # the entries carry the batch-only features (sdk/online.py)
            for feature in blueprint.features:
                if feature.source == "batch":
                    frame[BATCH_PREFIX + feature.name] = chunk[feature.name].to_numpy()
        frames.append(frame)
        done = min(lo + SCORING_CHUNK, len(wide))
        log.info("%s: scored %d/%d units (%.0f/s)",
                 blueprint.name, done, len(wide), done / (time.perf_counter() - started))
    version = policy_version(run_date, model_version, blueprint, params)
    meta = {"model_uri": model_uri, "model_version": model_version, "run_date": run_date,
            "policy_params": json.dumps(dict(params or blueprint.policy.params), sort_keys=True)}
    meta.update(publish_for_serving(client, blueprint, version, models, params, ttl_seconds=ttl_seconds))
    return publish_policy(client, blueprint, pd.concat(frames, ignore_index=True), version=version,
                          ttl_seconds=ttl_seconds, meta=meta, exploration=exploration_spec(blueprint, params))
