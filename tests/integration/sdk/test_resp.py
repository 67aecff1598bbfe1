"""Packed pipelines against a real redis-server: every reply is read, errors are raised."""

from __future__ import annotations

import pytest
import redis

from looper_common.sdk.resp import dedicated_connection, send_packed, set_ex_commands, xack_commands, xadd_commands

pytestmark = pytest.mark.integration


def test_every_reply_is_read_and_the_connection_stays_usable(redis_client):
    client = redis.Redis(connection_pool=redis.ConnectionPool(
        **redis_client.connection_pool.connection_kwargs, max_connections=1))
    payloads = [b"x" * (i % 50) for i in range(20_000)]  # many socket reads of replies
    with dedicated_connection(client) as conn:
        send_packed(conn, xadd_commands(b"s", b"e", payloads), len(payloads))
    assert client.xlen("s") == len(payloads)  # the same (only) connection: nothing left unread
    keys = [b"k%d" % i for i in range(3_000)]
    with dedicated_connection(client) as conn:
        send_packed(conn, set_ex_commands(keys, keys, 60), len(keys))
    assert client.get("k2999") == b"k2999" and 0 < client.ttl("k0") <= 60


def test_an_error_reply_is_raised_after_reading_the_rest(redis_client):
    client = redis.Redis(connection_pool=redis.ConnectionPool(
        **redis_client.connection_pool.connection_kwargs, max_connections=1))
    client.set("not_a_stream", "v")
    packed = xadd_commands(b"s", b"e", [b"a"]) + xadd_commands(b"not_a_stream", b"e", [b"b"]) + xadd_commands(
        b"s", b"e", [b"c"] * 10)
    with dedicated_connection(client) as conn, pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        send_packed(conn, packed, 12)
    assert client.xlen("s") == 11 and client.get("not_a_stream") == b"v"


def test_packed_xacks_acknowledge_every_id(redis_client):
    redis_client.xgroup_create("s", "g", id="0", mkstream=True)
    for _ in range(25):
        redis_client.xadd("s", {"e": "x"})
    ids = [sid for sid, _ in redis_client.xreadgroup("g", "c", {"s": ">"})[0][1]]
    packed, commands = xack_commands(b"s", b"g", ids[:23], per_command=10)
    assert commands == 3
    with dedicated_connection(redis_client) as conn:
        send_packed(conn, packed, commands)
    pending = redis_client.xpending_range("s", "g", min="-", max="+", count=100)
    assert [p["message_id"] for p in pending] == ids[23:]
