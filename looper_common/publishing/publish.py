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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import redis
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from looper_common.contracts.blueprint import Blueprint
from looper_common.labels.windows import day_bounds
from looper_common.lake.delta_read import blueprint_dates, read_table
from looper_common.lake.spark import SessionSource, in_background
from looper_common.lake.tables import BRONZE_DECISIONS, Lake
from looper_common.publishing.redis_policy import PublishStats, publish_policy
from looper_common.training.examples import feature_columns, spark_like_pandas, typed_features

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


def latest_unit_features(
    spark: SparkSession, lake: Lake, blueprint: Blueprint, run_date: date
) -> DataFrame:
    """One row per unit decided for before the end of ``run_date``, with its latest features.

    Latest by decision time, ties broken by decision id; features as typed columns.
    """
    _, end = day_bounds(run_date)
    decisions = lake.read(spark, BRONZE_DECISIONS).where(
        (F.col("blueprint") == blueprint.name)
        & (F.col("date") <= F.lit(run_date))
        & (F.col("ts") < F.lit(end))
    )
    latest = decisions.groupBy("unit_id").agg(
        F.max_by("features", F.struct("ts", "decision_id")).alias("features"),
        F.max("ts").alias("features_ts"),
    )
    return latest.select("unit_id", "features_ts", *feature_columns(latest, blueprint))


UNIT_COLUMNS = ("unit_id", "ts", "decision_id", "features")


def latest_unit_features_arrow(decisions: pa.Table, blueprint: Blueprint, run_date: date) -> pd.DataFrame:
    """:func:`latest_unit_features` of bronze decision rows already read, as pandas."""
    _, end = day_bounds(run_date)
    decisions = decisions.filter(pc.and_(
        pc.equal(decisions["blueprint"], blueprint.name),
        pc.less(decisions["ts"], pa.scalar(end, decisions.schema.field("ts").type)),
    ))
    # the last row of each unit in (unit, ts, decision id) order is its latest decision
    ordered = decisions.take(pc.sort_indices(
        decisions, sort_keys=[("unit_id", "ascending"), ("ts", "ascending"), ("decision_id", "ascending")]))
    units = ordered["unit_id"].to_numpy(zero_copy_only=False)
    last = np.flatnonzero(np.append(units[1:] != units[:-1], True)) if len(units) else np.array([], "int64")
    latest = ordered.take(pa.array(last, pa.int64()))
    table = pa.table({
        "unit_id": latest["unit_id"], "features_ts": latest["ts"],
        **typed_features(latest["features"], blueprint),
    })
    return spark_like_pandas(table)


def load_units(
    lake: Lake, blueprint: Blueprint, run_date: date, *, spark: SessionSource
) -> pd.DataFrame:
    """:func:`latest_unit_features` as pandas: what ``publish_champion`` scores.

    Read from the Delta log with pyarrow up to the lake's ``pyarrow_max_bytes`` of
    Parquet on a local lake (``delta_read``), else with ``spark()``.
    """
    local = read_table(lake, BRONZE_DECISIONS, columns=("blueprint", "date", *UNIT_COLUMNS),
                       where=blueprint_dates(blueprint.name, last=run_date))
    if local is not None:
        return latest_unit_features_arrow(local.table, blueprint, run_date)
    return latest_unit_features(spark(), lake, blueprint, run_date).toPandas()


def publish_champion(
    lake: Lake,
    client: redis.Redis,
    blueprint: Blueprint,
    run_date: date,
    *,
    spark: SessionSource,
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
    import mlflow.sklearn

    from looper_common.decision_science.policies import exploration_spec, policy_frame

    started = time.perf_counter()
    if units is None:
        units = in_background(lambda: load_units(lake, blueprint, run_date, spark=spark), "units")
    # the models load (scikit-learn, skops: seconds of imports) while the features are read
    models = {blueprint.objectives.maximize: mlflow.sklearn.load_model(model_uri)}
    models.update({label: mlflow.sklearn.load_model(uri) for label, uri in (extra_models or {}).items()})
    wide = units.result()
    if wide.empty:
        raise ValueError(f"{blueprint.name}: no decisions up to {run_date}; nothing to publish")
    log.info("%s: features of %d units loaded and %d model(s) (%.1f s)",
             blueprint.name, len(wide), len(models), time.perf_counter() - started)
    started, frames = time.perf_counter(), []
    for lo in range(0, len(wide), SCORING_CHUNK):
        frames.append(policy_frame(models, wide.iloc[lo:lo + SCORING_CHUNK], blueprint, params))
        done = min(lo + SCORING_CHUNK, len(wide))
        log.info("%s: scored %d/%d units (%.0f/s)",
                 blueprint.name, done, len(wide), done / (time.perf_counter() - started))
    version = policy_version(run_date, model_version, blueprint, params)
    meta = {"model_uri": model_uri, "model_version": model_version, "run_date": run_date,
            "policy_params": json.dumps(dict(params or blueprint.policy.params), sort_keys=True)}
    return publish_policy(client, blueprint, pd.concat(frames, ignore_index=True), version=version,
                          ttl_seconds=ttl_seconds, meta=meta, exploration=exploration_spec(blueprint, params))
