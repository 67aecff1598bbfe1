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

try:  # hiredis, and what redis-py's hiredis reader returns while a reply is incomplete
    import hiredis
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA

    _READER: type | tuple[()] = hiredis.Reader
    _PUSH: type | tuple[()] = getattr(hiredis, "PushNotification", ())  # >= 3.2 marks RESP3 pushes
except ImportError:  # no hiredis, or another redis-py: every reply through read_response
    _NOT_ENOUGH_DATA, _READER, _PUSH = None, (), ()
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


def xack_commands(stream: bytes, group: bytes, ids: Sequence[bytes], per_command: int = 10_000) -> tuple[bytes, int]:
    """``XACK stream group id...`` in commands of ``per_command`` ids, packed; and how many commands."""
    head = b"$4\r\nXACK\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(stream), stream, len(group), group)
    commands = []
    for start in range(0, len(ids), per_command):
        chunk = ids[start:start + per_command]
        args = b"".join([b"$%d\r\n%b\r\n" % (len(i), i) for i in chunk])
        commands.append(b"*%d\r\n" % (len(chunk) + 3) + head + args)
    return b"".join(commands), len(commands)


def send_packed(conn: redis.Connection, packed: bytes, replies: int) -> None:
    """Send packed commands and read every reply (raises the first error Redis returned).

    ``read_response`` costs microseconds of Python per reply; with the hiredis parser,
    the replies one socket read brought are taken straight from its reader, and
    ``read_response`` only reads the socket when that buffer runs dry (so timeouts,
    disconnects and RESP3 push messages are handled by redis-py as before).
    """
    conn.send_packed_command([packed])
    parser = getattr(conn, "_parser", None)
    reader = getattr(parser, "_reader", None)
    gets = reader.gets if isinstance(reader, _READER) and _NOT_ENOUGH_DATA is not None else None
    error = None
    left = replies
    while left:
        reply = gets() if gets is not None else _NOT_ENOUGH_DATA
        if reply is _NOT_ENOUGH_DATA:  # nothing buffered: one reply through redis-py, reading the socket
            try:
                conn.read_response()
            except redis.ResponseError as err:
                error = error or err
        elif isinstance(reply, _PUSH):  # not a reply: redis-py's own handling, as read_response does
            parser.handle_push_response(reply)
            continue
        elif isinstance(reply, redis.ConnectionError):
            conn.disconnect()
            raise reply
        elif isinstance(reply, redis.ResponseError):
            error = error or reply
        left -= 1
    if error is not None:
        raise error
