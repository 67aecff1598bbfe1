"""What ingestion needs of Redis before it reads: an eviction policy that keeps streams, and the group.

Under ``allkeys-*`` Redis evicts any key at ``maxmemory``, streams included: events would
vanish before ingestion commits them. ``volatile-*`` evicts only keys with a TTL, and a
stream never has one (nothing in Looper sets one), so ingestion accepts it beside
``noeviction``. At ``maxmemory`` with ``noeviction`` Redis refuses commands that grow
memory (``XGROUP CREATE ... MKSTREAM`` among them) but serves XREADGROUP, XACK and XTRIM:
the group is created only when the stream has none, so a full Redis still drains.
"""

from __future__ import annotations

import redis

from looper_common.contracts import events, redis_conn
from looper_common.contracts.errors import OperatorError

SAFE_POLICY_PREFIXES = ("noeviction", "volatile-")


class RedisPolicyError(OperatorError):
    """Redis is configured so that it can evict stream entries before they are ingested."""


def check_eviction_policy(client: redis.Redis | redis.RedisCluster) -> str:
    """The server's ``maxmemory-policy`` (of every primary of a cluster); raises
    :class:`RedisPolicyError` if it can evict streams."""
    policies = [str(info.get("maxmemory_policy", "noeviction")) for info in redis_conn.info_values(client, "memory")]
    for policy in policies:
        if not policy.startswith(SAFE_POLICY_PREFIXES):
            raise RedisPolicyError(
                f"Redis maxmemory-policy is {policy}: at maxmemory it evicts event streams before they are "
                "ingested; set it to noeviction (CONFIG SET maxmemory-policy noeviction, or in redis.conf)"
            )
    return policies[0]


def _has_group(client: redis.Redis, stream: str) -> bool:
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:  # no such stream yet
        return False
    names = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"] for g in groups}
    return events.INGEST_GROUP in names


def ensure_group(client: redis.Redis, stream: str) -> None:
    """Create ingestion's consumer group on ``stream`` unless it exists (no write when it does)."""
    if _has_group(client, stream):
        return
    try:
        client.xgroup_create(stream, events.INGEST_GROUP, id="0", mkstream=True)
    except redis.OutOfMemoryError:
        raise RedisPolicyError(full_redis_message(client, stream)) from None
    except redis.ResponseError as err:
        if not str(err).startswith("BUSYGROUP"):  # another ingestion created it first
            raise


def full_redis_message(client: redis.Redis, stream: str) -> str:
    """Why ingestion cannot start on a full Redis without its group, and the fix (INFO is served at maxmemory)."""
    memory = client.info("memory")
    used, limit = memory.get("used_memory", "?"), memory.get("maxmemory", "?")
    policy = memory.get("maxmemory_policy", "?")
    return (
        f"Redis is at maxmemory and refused to create the consumer group {events.INGEST_GROUP} on {stream} "
        f"(used_memory {used} bytes, maxmemory {limit}, maxmemory-policy {policy}); nothing was read or "
        f"acknowledged, the stream keeps its {client.xlen(stream)} entries. Fix: raise maxmemory "
        "(redis-cli CONFIG SET maxmemory <bytes>, or maxmemory in redis.conf) or free memory, then rerun "
        "ingest_events; once the group exists ingestion drains a full Redis"
    )
