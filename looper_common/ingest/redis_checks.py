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

SAFE_POLICY_PREFIXES = ("noeviction", "volatile-")


class RedisPolicyError(RuntimeError):
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
    except redis.OutOfMemoryError as err:
        raise RedisPolicyError(
            f"Redis is at maxmemory and refused to create the consumer group on {stream} ({err}); "
            "free memory or raise maxmemory, then rerun"
        ) from err
    except redis.ResponseError as err:
        if not str(err).startswith("BUSYGROUP"):  # another ingestion created it first
            raise
