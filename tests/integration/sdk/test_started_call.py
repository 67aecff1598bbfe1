"""Commands sent now and read later (sdk/started_call.py) against a real redis-server."""

from __future__ import annotations

import pytest
import redis

from looper_common.sdk.started_call import StartedCall, start_mget
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def test_a_started_mget_reads_what_a_blocking_one_reads(redis_client):
    redis_client.mset({"sc:a": b"1", "sc:b": b"\x00\xff"})
    keys = ["sc:a", "sc:missing", "sc:b"]
    assert start_mget(redis_client, redis_client.mget, keys)() == redis_client.mget(keys) == [b"1", None, b"\x00\xff"]


def test_a_started_mget_that_could_not_be_sent_is_read_the_blocking_way(redis_process):
    port = free_port()
    reader = redis.Redis(port=port, socket_timeout=2.0, socket_connect_timeout=2.0)
    read = start_mget(reader, reader.mget, ["sc:a"])  # nothing listens: the connect failed, nothing was sent
    server = redis_process(port=port)
    server.client.set("sc:a", b"1")
    assert read() == [b"1"]  # read by the blocking MGET once Redis is there


def test_a_started_mget_raises_what_a_blocking_one_raises_when_redis_is_down():
    port = free_port()
    reader = redis.Redis(port=port, socket_timeout=0.2, socket_connect_timeout=0.2, retry=None)
    with pytest.raises(redis.ConnectionError):
        start_mget(reader, reader.mget, ["sc:a"])()


def test_an_error_reply_is_raised_and_the_connection_stays_in_step(redis_client):
    call = StartedCall(redis_client, "EVALSHA", "0" * 40, 0)
    with pytest.raises(redis.exceptions.NoScriptError):
        call.reply()
    with pytest.raises(RuntimeError):
        call.reply()  # read once
    assert StartedCall(redis_client, "ECHO", b"next").reply() == b"next"  # the pool's connections answer in order
    assert redis_client.ping()
