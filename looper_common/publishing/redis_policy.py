"""Writing a policy version to Redis, switching the active pointer, rolling it back (DESIGN.md §6).

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
from looper_common.sdk.redis_batches import PER_CALL, BatchWriter

log = logging.getLogger(__name__)
HISTORY_LENGTH = 20
ROLLED_BACK = "rolled_back_at"  # meta field set on the version a rollback left
meta_key = policy_store.meta_key  # defined next to the keys the SDK reads

class RollbackError(RuntimeError):
    """No version to roll back to, or its entries have expired."""


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
    refused = _refusal(client, bp, version, run_date)
    if refused is not None:
        code, current = refused
        log.warning("%s: %s; not publishing it", bp, _REFUSED[code].format(version=version, current=current))
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
    code, previous = _switch(client, bp, version, run_date) if switch else (0, None)
    if code < 0:
        log.warning("%s: %s meanwhile; pointer left at %s",
                    bp, _REFUSED[code].format(version=version, current=previous), previous)
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


ROLLED_BACK_CODE, OLDER_CODE = -1, -2
_REFUSED = {
    ROLLED_BACK_CODE: "version {version} was rolled back",
    OLDER_CODE: "version {version} is for an older run date than the active {current}",
}


def _refusal(
    client: redis.Redis | redis.client.Pipeline, bp: str, version: str, run_date: str | None
) -> tuple[int, str | None] | None:
    """Why ``version`` must not become active, as ``(code, active version)``; None when it may."""
    current = client.get(policy_store.active_key(bp))
    current = current.decode() if current is not None else None
    if current == version:
        return None
    if client.hexists(meta_key(bp, version), ROLLED_BACK):
        return ROLLED_BACK_CODE, current
    if current is not None and run_date is not None:
        active_date = client.hget(meta_key(bp, current), "run_date")
        if active_date is not None and active_date.decode() > run_date:  # ISO dates sort by time
            return OLDER_CODE, current
    return None


def _switch(client: redis.Redis, bp: str, version: str, run_date: str | None) -> tuple[int, str | None]:
    """Atomically make ``version`` active, pushing the previous one onto the history.

    Returns ``(1, previous)`` when switched, ``(0, version)`` when it was already active,
    or a refusal code of :func:`_refusal`. An optimistic transaction (WATCH on the
    pointer, the history and both meta hashes), like :func:`rollback`.
    """
    active, history = policy_store.active_key(bp), policy_store.history_key(bp)
    outcome: list[tuple[int, str | None]] = []

    def attempt(pipe: redis.client.Pipeline) -> None:
        current = pipe.get(active)
        current = current.decode() if current is not None else None
        if current is not None:
            pipe.watch(meta_key(bp, current))
        if current == version:
            outcome[:] = [(0, current)]
            return
        refused = _refusal(pipe, bp, version, run_date)
        if refused is not None:
            outcome[:] = [refused]
            return
        pipe.multi()
        pipe.lrem(history, 0, version)
        if current is not None:
            pipe.lpush(history, current)
            pipe.ltrim(history, 0, HISTORY_LENGTH - 1)
        pipe.set(active, version)
        outcome[:] = [(1, current)]

    client.transaction(attempt, active, history, meta_key(bp, version))
    return outcome[0]


def rollback(client: redis.Redis, blueprint_name: str) -> tuple[str | None, str]:
    """Point the blueprint back at the previous version, popped from the history.

    Returns ``(from_version, to_version)``. Raises :class:`RollbackError` when there is
    no previous version or its entries have expired. The version left is marked so
    that rerunning its publish does not make it active again.
    """
    active = policy_store.active_key(blueprint_name)
    history = policy_store.history_key(blueprint_name)
    moved: list[str | None] = []

    def attempt(pipe: redis.client.Pipeline) -> None:
        current, previous = pipe.get(active), pipe.lindex(history, 0)
        if previous is None:
            raise RollbackError(f"{blueprint_name}: no previous policy version to roll back to")
        previous = previous.decode()
        if not pipe.exists(meta_key(blueprint_name, previous)):
            raise RollbackError(
                f"{blueprint_name}: the previous version {previous} has expired (its entries "
                "are gone); publish a model instead"
            )
        current = current.decode() if current is not None else None
        left_meta = meta_key(blueprint_name, current) if current else None
        ttl_ms = pipe.pttl(left_meta) if left_meta else -2
        pipe.multi()
        pipe.lpop(history)
        pipe.set(active, previous)
        if ttl_ms > 0:  # re-applying the TTL: never leave a meta hash that does not expire
            pipe.hset(left_meta, ROLLED_BACK, datetime.now(UTC).isoformat(timespec="seconds"))
            pipe.pexpire(left_meta, ttl_ms)
        moved[:] = [current, previous]

    client.transaction(attempt, active, history)
    log.info("%s: active policy %s -> %s", blueprint_name, moved[0], moved[1])
    return moved[0], moved[1]
