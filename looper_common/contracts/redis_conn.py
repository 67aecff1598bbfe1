"""The one place that builds Redis clients: one server or a Redis Cluster, from settings.

``redis.cluster: true`` in the environment's YAML (or ``LOOPER_REDIS_CLUSTER=true``)
makes every client a ``redis.RedisCluster`` (redis-py's cluster client) started from
``redis.url``, any node of the cluster; otherwise a ``redis.Redis``. Code that works
on both uses only commands whose keys share one slot (``contracts.policy_store``'s
hash tags) and the helpers here where the two clients differ: a batch GET
(:func:`batch_get`: one MGET, or MGETs grouped by slot), a server setting read from
every primary (:func:`config_values`, :func:`info_values`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import redis
import redis.asyncio

__all__ = [
    "ERRORS", "LINK_ERRORS", "PASSWORD_ENV", "RedisClient", "batch_get", "config_values", "connect", "connect_async",
    "from_settings", "info_values", "is_cluster",
]

PASSWORD_ENV = "LOOPER_REDIS_PASSWORD"
RedisClient = redis.Redis | redis.RedisCluster
# What a call may raise: redis-py's cluster client also raises RedisClusterException (not a
# RedisError), e.g. when no node it knows answers or a slot has no primary during a failover.
ERRORS: tuple[type[Exception], ...] = (redis.RedisError, redis.exceptions.RedisClusterException)
# The server or the cluster is unreachable, hung or still loading (retry later)
LINK_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis.exceptions.RedisClusterException,
)


def connect(url: str, *, password: str | None = None, cluster: bool = False, **options: object) -> RedisClient:
    """A client for ``url``; ``password`` defaults to ``$LOOPER_REDIS_PASSWORD`` (one in the URL wins).

    ``options`` are redis-py's (``socket_timeout``, ...), the same for both clients.
    """
    if password is None:
        password = os.environ.get(PASSWORD_ENV) or None
    if cluster:
        return redis.RedisCluster.from_url(url, password=password, **options)
    return redis.Redis.from_url(url, password=password, **options)


def connect_async(
    url: str, *, password: str | None = None, cluster: bool = False, **options: object
) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    """:func:`connect` with redis-py's asyncio clients (for code on an event loop)."""
    if password is None:
        password = os.environ.get(PASSWORD_ENV) or None
    if cluster:
        return redis.asyncio.RedisCluster.from_url(url, password=password, **options)
    return redis.asyncio.Redis.from_url(url, password=password, **options)


def from_settings(redis_settings: object, **options: object) -> RedisClient:
    """A client as ``settings.redis`` (a ``config.RedisSettings``) describes it."""
    return connect(
        redis_settings.url, password=redis_settings.password, cluster=redis_settings.cluster, **options
    )


def is_cluster(client: object) -> bool:
    return isinstance(client, (redis.RedisCluster, redis.asyncio.RedisCluster))


def batch_get(client: RedisClient) -> Callable[[Sequence[bytes | str]], list[bytes | None]]:
    """The values of many keys in their order: one ``MGET`` on one Redis; on a cluster,
    redis-py's ``mget_nonatomic`` (an MGET per slot, pipelined per node)."""
    return client.mget_nonatomic if is_cluster(client) else client.mget


def config_values(client: RedisClient, name: str) -> list[object]:
    """``CONFIG GET name`` of every primary (one value on one Redis); None where it is unset."""
    if is_cluster(client):
        replies = client.config_get(name, target_nodes=redis.RedisCluster.PRIMARIES).values()
    else:
        replies = [client.config_get(name)]
    return [reply.get(name) for reply in replies]


def info_values(client: RedisClient, section: str) -> list[dict]:
    """``INFO section`` of every primary (one reply on one Redis)."""
    if is_cluster(client):
        return list(client.info(section, target_nodes=redis.RedisCluster.PRIMARIES).values())
    return [client.info(section)]
