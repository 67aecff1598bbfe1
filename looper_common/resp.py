"""Pipelined writes packed straight in the Redis protocol (RESP).

redis-py spends tens of microseconds of Python per pipelined command; for the hot
paths (the SDK's event batches, publishing a million entries) the commands are
packed in one pass and sent on a pooled connection, and every reply is read, so an
error Redis returns is raised as redis-py would raise it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis

_SET = b"*5\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"


@contextmanager
def dedicated_connection(client: redis.Redis) -> Iterator[redis.Connection]:
    """A pooled connection for raw pipelining, dropped on error (replies may be unread)."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        yield conn
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)


def set_ex_commands(keys: Sequence[bytes], values: Sequence[bytes], ttl_seconds: int) -> bytes:
    """``SET key value EX ttl`` of each pair, packed."""
    ttl = str(ttl_seconds).encode()
    tail = b"$2\r\nEX\r\n$%d\r\n%b\r\n" % (len(ttl), ttl)
    pairs = zip(keys, values, strict=True)
    return b"".join([_SET % (len(k), k, len(v), v) + tail for k, v in pairs])


def xadd_commands(stream: bytes, field: bytes, payloads: Sequence[bytes]) -> bytes:
    """``XADD stream * field payload`` of each payload, packed."""
    head = b"*5\r\n$4\r\nXADD\r\n$%d\r\n%b\r\n$1\r\n*\r\n$%d\r\n%b\r\n" % (
        len(stream), stream, len(field), field
    )
    return b"".join([head + b"$%d\r\n%b\r\n" % (len(p), p) for p in payloads])


def send_packed(conn: redis.Connection, packed: bytes, replies: int) -> None:
    """Send packed commands and read every reply (raises the first error Redis returned)."""
    conn.send_packed_command([packed])
    error = None
    for _ in range(replies):
        try:
            conn.read_response()
        except redis.ResponseError as err:
            error = error or err
    if error is not None:
        raise error
