"""Scoring units and writing their entries, once per batch of a blueprint's decisions.

:func:`score_and_write` is the one implementation of "latest features of each unit →
champion's scores → policy → entries in Redis". ``Lake.map_groups`` runs it over the
whole selection on the driver (delta-rs) or once per partition on Spark's executors
(``mapInArrow``, the :class:`ScoringJob` with the models broadcast), by the lake's size
rule (``local_read_max_mb``); only the counts come back. Each call opens its own Redis
client from the URL, the password from the process' environment: the driver's own, or
on an executor ``spark.executorEnv.<password_env>``, which the job's session sets when
the driver has it (``lake.spark.executor_secrets``; Spark redacts it in its UI and logs).
The job (:class:`ScoringJob`) carries only the variable's name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from looper_common.contracts.blueprint import Blueprint
from looper_common.sdk.redis_batches import PER_CALL

SCORING_CHUNK = 200_000
WRITE_COUNTS = pa.schema([("entries", pa.int64()), ("batches", pa.int64())])


@dataclass(frozen=True)
class ScoringJob:
    """What every batch needs: the blueprint, the models, the version, where to write (no secret)."""

    blueprint: Blueprint
    run_date: date
    models: Mapping[str, object]
    params: Mapping[str, object] | None
    version: str
    ttl_seconds: int
    redis_url: str
    password_env: str = "LOOPER_REDIS_PASSWORD"
    batch_size: int = PER_CALL
    cluster: bool = False  # redis_url is a node of a Redis Cluster (``redis.cluster``)


def score_and_write(decisions: pa.Table, job: ScoringJob) -> pa.Table:
    """The entries of the units in ``decisions`` (every decision of each unit in it), written to Redis.

    Returns one row: how many entries and write batches this call made.
    """
    from looper_common.decision_science.policies import policy_frame
    from looper_common.lake.frames import to_pandas
    from looper_common.publishing.redis_policy import write_entries
    from looper_common.publishing.units import latest_units
    from looper_common.sdk.connection import connect

    wide = to_pandas(latest_units(decisions, job.blueprint, job.run_date))
    entries = batches = 0
    if len(wide):
        client = connect(job.redis_url, os.environ.get(job.password_env) or None, socket_timeout=30,
                         cluster=job.cluster)
        try:
            for lo in range(0, len(wide), SCORING_CHUNK):
                chunk = wide.iloc[lo:lo + SCORING_CHUNK]
                frame = with_batch_features(policy_frame(job.models, chunk, job.blueprint, job.params), chunk,
                                            job.blueprint)
                written, calls = write_entries(client, job.blueprint, job.version, frame, job.ttl_seconds,
                                               job.batch_size)
                entries, batches = entries + written, batches + calls
        finally:
            client.close()
    return pa.table({"entries": [entries], "batches": [batches]}, schema=WRITE_COUNTS)


def with_batch_features(frame, chunk, blueprint: Blueprint):
    """In hybrid serving, the entries carry the units' ``source: batch`` features (``sdk/online.py``)."""
    from looper_common.publishing.redis_policy import BATCH_PREFIX

    if blueprint.serving.mode == "hybrid":
        for feature in blueprint.features:
            if feature.source == "batch":
                frame[BATCH_PREFIX + feature.name] = chunk[feature.name].to_numpy()
    return frame

