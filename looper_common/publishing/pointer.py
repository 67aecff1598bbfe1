"""The blueprint's active-version pointer: the atomic switch, its refusals, and rollback.

The pointer (``policy_store.active_key``) names the version the SDK serves; the history
list keeps the versions it pointed at before, newest first, for ``looper rollback``.
A switch and a rollback are optimistic transactions over the pointer, the history and
the meta hashes involved (WATCH/MULTI; every key of a blueprint shares its hash tag, so
they hold on Redis Cluster too). A version that was rolled back, or whose run date is
older than the active one's, is refused.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import redis

from looper_common.contracts import policy_store

log = logging.getLogger(__name__)
meta_key = policy_store.meta_key
HISTORY_LENGTH = 20
ROLLED_BACK = "rolled_back_at"  # meta field set on the version a rollback left


class RollbackError(RuntimeError):
    """No version to roll back to, or its entries have expired."""


ROLLED_BACK_CODE, OLDER_CODE = -1, -2
REFUSED = {
    ROLLED_BACK_CODE: "version {version} was rolled back",
    OLDER_CODE: "version {version} is for an older run date than the active {current}",
}


def refusal(
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


def switch_pointer(client: redis.Redis, bp: str, version: str, run_date: str | None) -> tuple[int, str | None]:
    """Atomically make ``version`` active, pushing the previous one onto the history.

    Returns ``(1, previous)`` when switched, ``(0, version)`` when it was already active,
    or a refusal code of :func:`refusal`. An optimistic transaction (WATCH on the
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
        refused = refusal(pipe, bp, version, run_date)
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
