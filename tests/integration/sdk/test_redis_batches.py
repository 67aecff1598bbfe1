"""Batched writes against a real redis-server: every item written, every refused write raised."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from looper_common.sdk.redis_batches import BatchWriter

pytestmark = pytest.mark.integration


@contextmanager
def refusing_writes(client: redis.Redis) -> Iterator[None]:
    """``maxmemory`` below what is used, with ``noeviction``: Redis refuses every write (OOM)."""
    before = client.config_get("maxmemory", "maxmemory-policy")
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)
    try:
        yield
    finally:
        client.config_set("maxmemory", before["maxmemory"])
        client.config_set("maxmemory-policy", before["maxmemory-policy"])


@contextmanager
def read_only_replica(workdir: Path) -> Iterator[redis.Redis]:
    """A redis-server that is a replica (of a primary that is not there): it refuses every write."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir), "--replicaof", "127.0.0.1", "1"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield client
    finally:
        proc.terminate()
        proc.wait(10)


def test_xadd_writes_every_payload_in_order_in_calls_of_per_call(redis_client):
    writer = BatchWriter(redis_client, per_call=300)
    payloads = [b"p%d" % i for i in range(1_000)]
    assert writer.xadd("s", b"e", payloads) == 4
    assert writer.xadd("s", b"e", [b"last"]) == 1
    assert writer.xadd("s", b"e", []) == 0
    assert [f[b"e"] for _, f in redis_client.xrange("s")] == [*payloads, b"last"]


def test_set_ex_writes_every_pair_with_its_ttl(redis_client):
    writer = BatchWriter(redis_client, per_call=700)
    keys = [b"k%d" % i for i in range(2_000)]
    values = [b"v%d" % i for i in range(2_000)]
    assert writer.set_ex(keys, values, 60) == 3
    assert redis_client.mget(keys) == values
    assert all(0 < redis_client.ttl(k) <= 60 for k in keys[::199])
    with pytest.raises(ValueError, match="2000 keys for 1999 values"):
        writer.set_ex(keys, values[1:], 60)


@pytest.mark.parametrize("n", [1, 2])  # one payload goes as a plain XADD, more through the script
def test_a_wrong_type_key_raises_and_writes_nothing(redis_client, n):
    redis_client.set("not_a_stream", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        BatchWriter(redis_client).xadd("not_a_stream", b"e", [b"a"] * n)
    assert redis_client.get("not_a_stream") == b"v"


@pytest.mark.parametrize("n", [1, 25])
def test_refused_writes_raise_and_write_nothing(redis_client, n):
    writer = BatchWriter(redis_client, per_call=10)
    with refusing_writes(redis_client):
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            writer.xadd("s", b"e", [b"x"] * n)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            writer.set_ex([b"k1", b"k2"], [b"v1", b"v2"], 60)
    assert redis_client.exists("s", "k1", "k2") == 0
    assert writer.xadd("s", b"e", [b"x"] * 25) == 3  # the same writer once Redis takes writes again
    assert redis_client.xlen("s") == 25


def test_a_read_only_replica_raises_and_writes_nothing(tmp_path):
    with read_only_replica(tmp_path) as replica:
        writer = BatchWriter(replica)
        for n in (1, 3):
            with pytest.raises(redis.exceptions.ReadOnlyError):
                writer.xadd("s", b"e", [b"x"] * n)
        with pytest.raises(redis.exceptions.ReadOnlyError):
            writer.set_ex([b"k"], [b"v"], 60)
        assert replica.dbsize() == 0


def test_the_scripts_are_loaded_again_after_a_script_flush(redis_client):
    writer = BatchWriter(redis_client)
    writer.xadd("s", b"e", [b"a"])
    redis_client.script_flush()
    writer.xadd("s", b"e", [b"b"])
    assert [f[b"e"] for _, f in redis_client.xrange("s")] == [b"a", b"b"]
