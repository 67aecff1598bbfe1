"""The SDK's Redis connection: the password from the environment, the eviction-policy check.

A Redis that evicts keys under memory pressure (``allkeys-*``) can drop the event
streams and the active-version pointers: events vanish before ingestion reads them
and decisions fall back to the default with nothing telling why. The SDK refuses such
a Redis once, when it first reaches it. ``volatile-*`` policies evict only keys with a
TTL: the streams and the pointer have none, so nothing the loop cannot rebuild is lost,
but entries of the active version (published with a TTL) may go, and their units are
served the default (``unknown_unit``) until the next publish; that is logged as a
warning. A managed Redis that refuses ``CONFIG GET`` is used with a warning.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

import redis

from looper_common.contracts import redis_conn
from looper_common.contracts.redis_conn import PASSWORD_ENV

__all__ = ["PASSWORD_ENV", "check_eviction_policy", "connect", "mask_url"]

log = logging.getLogger(__name__)

SAFE_POLICIES = ("noeviction",)


class EvictionPolicyError(ValueError):
    """Redis may evict the keys the loop depends on (a ``LooperError`` in the SDK)."""


def connect(url: str, password: str | None, socket_timeout: float, cluster: bool = False) -> redis_conn.RedisClient:
    """A client for ``url`` (a node of a Redis Cluster when ``cluster``); the password is
    ``password``, else ``$LOOPER_REDIS_PASSWORD``.

    A password inside the URL (``redis://:secret@host``) wins, as in redis-py.
    """
    return redis_conn.connect(
        url, password=password, cluster=cluster, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
    )


def check_eviction_policy(client: redis_conn.RedisClient, where: str) -> None:
    """Raise :class:`EvictionPolicyError` when ``maxmemory-policy`` is ``allkeys-*`` (on any primary
    of a cluster).

    Connection errors propagate (the caller checks again later); a refused ``CONFIG``
    (managed Redis, ACLs) is a warning. ``where`` names the Redis in messages (a masked URL).
    """
    try:
        policies = redis_conn.config_values(client, "maxmemory-policy")
    except redis_conn.LINK_ERRORS:
        raise
    except redis.RedisError as err:
        log.warning("%s: cannot read maxmemory-policy (%s); make sure it is noeviction", where, err)
        return
    for policy in policies:
        _check_policy(policy, where)


def _check_policy(policy: object, where: str) -> None:
    if isinstance(policy, bytes):
        policy = policy.decode()
    if policy is None:
        log.warning("%s: CONFIG GET maxmemory-policy returned nothing; make sure it is noeviction", where)
    elif policy.startswith("allkeys-"):
        raise EvictionPolicyError(
            f"{where}: maxmemory-policy is {policy}: Redis may evict event streams and active policy "
            "pointers; set maxmemory-policy noeviction"
        )
    elif policy not in SAFE_POLICIES:
        log.warning(
            "%s: maxmemory-policy is %s: entries of the active policy version may be evicted "
            "(their units get the default); noeviction is recommended", where, policy,
        )


_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (``redis://user:***@host:6379/0``)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return _USERINFO.sub("***@", url)
