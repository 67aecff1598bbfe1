"""Writing a policy version to Redis, then switching the active pointer (DESIGN.md §6; the pointer: ``pointer.py``).

Each unit's entry is written under a new version prefix, with a TTL, by
``redis_batches.BatchWriter`` (one script call per chunk of entries); only then does
the blueprint's active pointer switch, in one atomic step that keeps the previous
version in a history list for ``looper rollback``, so a reader never follows the
pointer to a half-written version. Publishing the same version again rewrites the
same entries and leaves the pointer and history alone; so does publishing a version
that was rolled back (rerunning the task must not undo an operator's rollback), and a
version whose run date (its meta hash's ``run_date``) is older than the active one's:
rerunning an old day's publish never brings an old policy back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import redis

from looper_common.contracts import policy_store
from looper_common.contracts.blueprint import Blueprint, ExplorationSpec
from looper_common.publishing.pointer import REFUSED, refusal, switch_pointer
from looper_common.sdk.redis_batches import PER_CALL, BatchWriter

log = logging.getLogger(__name__)
meta_key = policy_store.meta_key  # defined next to the keys the SDK reads

@dataclass(frozen=True)
class PublishStats:
    blueprint: str
    version: str
    units: int
    batches: int
    seconds: float
    previous: str | None  # the active version before this publish
    switched: bool  # False when the version was already active (a rerun), rolled back or older

    def summary(self) -> str:
        rate = self.units / self.seconds if self.seconds else 0.0
        pointer = f"active {self.previous} -> {self.version}" if self.switched else "not switched"
        return (f"{self.blueprint}: {self.units} entries of {self.version} in {self.batches} "
                f"batch(es), {self.seconds:.1f} s ({rate:,.0f}/s); {pointer}")


def encode_entries(units: pd.DataFrame, blueprint: Blueprint) -> list[bytes]:
    """``policy_store.encode_entry`` of every row of a policy frame, without a json call each.

    Action names are ``[a-z0-9_]+`` and a finite float's repr is its JSON form, so one
    format string gives exactly the bytes ``encode_entry`` would.
    """
    actions = blueprint.decision.actions
    unknown = set(units["action"].unique()) - set(actions)
    if unknown:
        raise ValueError(f"{blueprint.name}: actions {sorted(unknown)} are not in {actions}")
    scores = [units[f"score_{a}"].to_numpy(dtype="float64") for a in actions]
    bad = int(sum((~np.isfinite(s)).sum() for s in scores))
    if bad:
        raise ValueError(f"{blueprint.name}: {bad} non-finite score(s); refusing to publish them")
    template = b'{"a":"%b","s":{' + b",".join(b'"%b":%%r' % a.encode() for a in actions) + b"}}"
    chosen = [a.encode() for a in units["action"].tolist()]
    entries = [template % row for row in zip(chosen, *(s.tolist() for s in scores), strict=True)]
    batch = batch_feature_json(units, blueprint)
    if batch is None:
        return entries
    return [entry[:-1] + b',"f":' + f + b"}" for entry, f in zip(entries, batch, strict=True)]


BATCH_PREFIX = "feature_"  # policy frame columns holding the values of ``source: batch`` features


def batch_feature_json(units: pd.DataFrame, blueprint: Blueprint) -> list[bytes] | None:
    """Per row, the JSON object of the unit's ``source: batch`` features (a missing value left out).

    None when the blueprint has none or the frame does not carry them (not hybrid serving).
    """
    names = [f for f in blueprint.features if f.source == "batch" and f"{BATCH_PREFIX}{f.name}" in units]
    if not names:
        return None
    cast = {"float": float, "int": int, "bool": bool, "category": str}
    columns = [(f.name, cast[f.type], units[f"{BATCH_PREFIX}{f.name}"].astype(object).tolist()) for f in names]
    out = []
    for i in range(len(units)):
        values = {name: kind(col[i]) for name, kind, col in columns if not pd.isna(col[i])}
        out.append(json.dumps(values, separators=(",", ":"), allow_nan=False).encode())
    return out


def _write_meta(
    client: redis.Redis, key: str, fields: Mapping[str, object], ttl: int, exploration: ExplorationSpec | None
) -> bool:
    pipe = client.pipeline(transaction=True)
    pipe.hset(key, mapping={k: str(v) for k, v in fields.items()})
    if exploration is None:  # a rerun without an override must not keep an earlier one
        pipe.hdel(key, policy_store.EXPLORATION_FIELD)
    else:
        pipe.hset(key, policy_store.EXPLORATION_FIELD, json.dumps(exploration.model_dump()))
    pipe.hsetnx(key, "published_at", datetime.now(UTC).isoformat(timespec="seconds"))
    pipe.expire(key, ttl)
    return bool(pipe.execute()[-2])  # HSETNX: 1 when this call created the hash


def write_entries(
    client: redis.Redis, blueprint: Blueprint, version: str, units: pd.DataFrame, ttl_seconds: int,
    batch_size: int = PER_CALL,
) -> tuple[int, int]:
    """``SET ... EX`` of every row of a policy frame under ``version``; returns ``(entries, batches)``.

    The same code on the driver (one call over every unit) and on Spark's executors (one
    call per partition, each with its own client): entries go in script calls of
    ``batch_size`` (``BatchWriter.set_ex``), and an error Redis returns is raised.
    """
    keys, values = entry_pairs(blueprint, version, units)
    return write_pairs(client, blueprint.name, version, keys, values, ttl_seconds, batch_size)


def entry_pairs(blueprint: Blueprint, version: str, units: pd.DataFrame) -> tuple[list[bytes], list[bytes]]:
    """The keys and values of a policy frame's entries (:func:`encode_entries` checks the frame)."""
    values = encode_entries(units, blueprint)
    prefix = policy_store.entry_key(blueprint.name, version, "").encode()
    return [prefix + u.encode() for u in units["unit_id"].astype(str).tolist()], values


def write_pairs(client: redis.Redis, bp: str, version: str, keys: list[bytes], values: list[bytes],
                ttl_seconds: int, batch_size: int = PER_CALL) -> tuple[int, int]:
    """``SET key value EX ttl`` of every pair, in script calls of ``batch_size``; returns ``(entries, batches)``."""
    started, last_log = time.perf_counter(), time.perf_counter()
    writer, batches = BatchWriter(client, per_call=batch_size), 0
    for lo in range(0, len(keys), batch_size):
        hi = min(lo + batch_size, len(keys))
        batches += writer.set_ex(keys[lo:hi], values[lo:hi], ttl_seconds)
        if time.perf_counter() - last_log > 5:
            last_log = time.perf_counter()
            log.info("%s: %d/%d entries of %s written (%d batches, %.0f/s)",
                     bp, hi, len(keys), version, batches, hi / (last_log - started))
    return len(keys), batches


def publish_entries(
    client: redis.Redis,
    blueprint: Blueprint,
    write: Callable[[], tuple[int, int]],
    *,
    version: str,
    ttl_seconds: int,
    meta: Mapping[str, object] | None = None,
    exploration: ExplorationSpec | None = None,
    switch: bool = True,
) -> PublishStats:
    """Meta hash, then ``write()`` (every entry, wherever it runs), then the pointer switch on this process.

    ``write`` returns ``(entries, batches)``, e.g. :func:`write_entries` over a frame here
    or the executors' sums; its error (or no entry at all) leaves the pointer where it
    was. The meta hash is written first with the entries' TTL, so it expires before any
    entry ("meta exists" means "all the entries still exist", what rollback relies on);
    its ``units`` field is set once the entries are in. ``switch=False`` leaves the
    pointer alone (a shadow or canary challenger).
    """
    bp = blueprint.name
    if ttl_seconds < 1:
        raise ValueError("ttl_seconds must be positive")
    mkey = meta_key(bp, version)
    run_date = str(meta["run_date"]) if meta and meta.get("run_date") is not None else None
    refused = refusal(client, bp, version, run_date)
    if refused is not None:
        code, current = refused
        log.warning("%s: %s; not publishing it", bp, REFUSED[code].format(version=version, current=current))
        return PublishStats(bp, version, 0, 0, 0.0, current, False)

    started = time.perf_counter()
    created = _write_meta(client, mkey, {"blueprint_version": blueprint.version, **(meta or {})}, ttl_seconds,
                          exploration)
    try:
        entries, batches = write()
        if entries == 0:
            raise ValueError(f"{bp}: no units to publish; the pointer stays where it is")
    except BaseException:
        if created:  # a version that never became active leaves no meta (its entries, if any, expire)
            client.delete(mkey)
        raise
    client.hset(mkey, "units", entries)
    code, previous = switch_pointer(client, bp, version, run_date) if switch else (0, None)
    if code < 0:
        log.warning("%s: %s meanwhile; pointer left at %s",
                    bp, REFUSED[code].format(version=version, current=previous), previous)
    stats = PublishStats(bp, version, entries, batches, time.perf_counter() - started, previous, code == 1)
    log.info("%s", stats.summary())
    return stats


def publish_policy(
    client: redis.Redis,
    blueprint: Blueprint,
    units: pd.DataFrame,
    *,
    version: str,
    ttl_seconds: int,
    batch_size: int = PER_CALL,
    meta: Mapping[str, object] | None = None,
    exploration: ExplorationSpec | None = None,
    switch: bool = True,
) -> PublishStats:
    """Write every unit's entry of ``version`` from this process, then switch the active pointer.

    ``units`` is a policy frame (``unit_id``, ``action``, ``score_<action>``...) as from
    ``policies.policy_frame``; ``meta`` adds fields (model, run date) to the meta hash.
    ``exploration`` (e.g. tuned by a policy tuning job) is written to the meta hash's
    ``exploration`` field, and the SDK applies it instead of the blueprint's
    ``policy.exploration`` while this version is active; None removes the field.
    See :func:`publish_entries` for the order of the writes;
    ``switch=False`` writes the version without moving the pointer (a shadow or canary challenger).
    """
    if units.empty:
        raise ValueError(f"{blueprint.name}: no units to publish; the pointer stays where it is")
    if not units["unit_id"].is_unique:
        raise ValueError(f"{blueprint.name}: unit ids must be unique in a published policy")
    if batch_size < 1:
        raise ValueError("ttl_seconds and batch_size must be positive")
    keys, values = entry_pairs(blueprint, version, units)  # a bad frame is refused before anything is written
    return publish_entries(
        client, blueprint, lambda: write_pairs(client, blueprint.name, version, keys, values, ttl_seconds, batch_size),
        version=version, ttl_seconds=ttl_seconds, meta=meta, exploration=exploration, switch=switch)
