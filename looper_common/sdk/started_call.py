"""A Redis command sent now and its reply read later, so the client works while Redis does.

redis-py's public connection API only: the client's pool lends a connection
(``get_connection``), the command goes out with ``send_command``, ``read_response``
reads its reply, and the connection goes back (``release``). One Redis only: a cluster
client routes each command by slot, and its callers keep the blocking calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import redis

from looper_common.contracts.redis_conn import LINK_ERRORS, RedisClient, is_cluster

__all__ = ["StartedCall", "start_mget"]


class StartedCall:
    """One command sent on a connection of its own; :meth:`reply` reads it (once)."""

    __slots__ = ("_pool", "_conn", "_error")

    def __init__(self, client: redis.Redis, *args: object) -> None:
        self._pool = client.connection_pool
        self._conn: redis.Connection | None = None
        self._error: Exception | None = None
        try:
            conn = self._pool.get_connection()
        except LINK_ERRORS as err:
            self._error = err
            return
        try:
            conn.send_command(*args)
        except LINK_ERRORS as err:  # send_command has closed the connection
            self._pool.release(conn)
            self._error = err
            return
        except BaseException:
            conn.disconnect()
            self._pool.release(conn)
            raise
        self._conn = conn

    def reply(self) -> object:
        """The reply, or what redis-py raises for it (the link error, too, when sending failed)."""
        conn, self._conn = self._conn, None
        if conn is None:
            raise self._error or RuntimeError("the reply was read already")
        try:
            response = conn.read_response()
        except (redis.ResponseError, *LINK_ERRORS):  # a reply in step, or a connection read_response closed
            self._pool.release(conn)
            raise
        except BaseException:  # e.g. KeyboardInterrupt: the reply may be half read
            conn.disconnect()
            self._pool.release(conn)
            raise
        self._pool.release(conn)
        return response


def start_mget(
    client: RedisClient, mget: Callable[[Sequence[str]], list[bytes | None]], keys: Sequence[str],
) -> Callable[[], list[bytes | None]]:
    """``mget(keys)`` sent now on one Redis; the returned call reads the values.

    A connection that fails reads them again through ``mget`` (redis-py's retries), as a
    blocking call's first failure would. On a cluster the returned call is ``mget(keys)``.
    """
    if is_cluster(client):
        return lambda: mget(keys)
    started = StartedCall(client, "MGET", *keys)

    def values() -> list[bytes | None]:
        try:
            return started.reply()  # type: ignore[return-value]
        except LINK_ERRORS:
            return mget(keys)

    return values
