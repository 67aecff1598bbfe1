"""Ingestion on a full Redis (maxmemory, noeviction) and on one that would evict streams, with real redis-servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import redis

from looper_common.contracts import events
from looper_common.ingest.redis_checks import RedisPolicyError, check_eviction_policy
from looper_common.ingest.streams import ingest_events
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS
from looper_common.sdk.client import LooperClient
from tests.conftest import FEATURES, ROOT, make_blueprint

pytestmark = pytest.mark.integration
STREAM = events.stream_key("t_notify")
TS = int(datetime(2026, 1, 3, 9, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def start_redis(redis_process):
    """Start a redis-server with extra arguments (conftest's ``redis_process``); its client."""
    return lambda *args: redis_process(*args).client


@pytest.fixture
def blueprints():
    blueprint = make_blueprint()
    return {blueprint.name: blueprint}


def _payload(blueprints, i: int) -> str:
    return json.dumps({
        "kind": "decision", "event_id": f"d{i}", "decision_id": f"d{i}", "blueprint": "t_notify",
        "blueprint_version": blueprints["t_notify"].version, "unit_id": f"u{i}", "ts": TS, "features": FEATURES,
        "action": "send", "propensity": 0.5, "action_probs": {"send": 0.5, "skip": 0.5}, "is_default": False,
    })


def _fill_until_refused(client: redis.Redis, blueprints) -> int:
    """XADD events until Redis refuses with OOM; returns how many it took."""
    sent = 0
    while True:
        pipe = client.pipeline(transaction=False)
        for i in range(sent, sent + 500):
            pipe.xadd(STREAM, {"e": _payload(blueprints, i)})
        results = pipe.execute(raise_on_error=False)
        refused = [r for r in results if isinstance(r, redis.ResponseError)]
        sent += len(results) - len(refused)
        if refused:
            assert all(isinstance(r, redis.OutOfMemoryError) for r in refused), refused[0]
            return sent


def test_a_full_redis_with_noeviction_is_drained(start_redis, tmp_path, blueprints):
    client = start_redis("--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
    lake = Lake(str(tmp_path / "lake"))
    lake.ensure_tables()
    client.xadd(STREAM, {"e": _payload(blueprints, -1)})
    ingest_events(client, lake, blueprints, streams=[STREAM])  # an earlier run: the group exists
    sent = _fill_until_refused(client, blueprints)
    assert sent > 1_000
    with pytest.raises(redis.OutOfMemoryError):  # what made the old job fail on every run
        client.xgroup_create(STREAM, events.INGEST_GROUP, id="0", mkstream=True)

    stats = ingest_events(client, lake, blueprints, streams=[STREAM], batch_size=2_000)
    assert (stats.events, stats.decisions, stats.quarantined) == (sent, sent, 0)
    assert lake.read(BRONZE_DECISIONS, columns=["event_id"]).table.num_rows == sent + 1
    assert client.xlen(STREAM) == 0
    client.xadd(STREAM, {"e": _payload(blueprints, sent)})  # room again for the SDK's writes


def test_a_full_redis_without_the_group_is_a_clear_error(start_redis, tmp_path, blueprints):
    client = start_redis("--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
    lake = Lake(str(tmp_path / "lake"))
    sent = _fill_until_refused(client, blueprints)
    with pytest.raises(RedisPolicyError) as refused:
        ingest_events(client, lake, blueprints, streams=[STREAM])
    message = str(refused.value)
    for part in ("at maxmemory and refused to create the consumer group", STREAM, "maxmemory 4194304",
                 "maxmemory-policy noeviction", f"keeps its {sent} entries", "CONFIG SET maxmemory"):
        assert part in message, (part, message)
    assert "OOM command not allowed" not in message and refused.value.__cause__ is None
    # nothing lost: the stream is intact, and once maxmemory is raised every entry reaches bronze
    assert client.xlen(STREAM) == sent
    client.config_set("maxmemory", "64mb")
    stats = ingest_events(client, lake, blueprints, streams=[STREAM], batch_size=5_000)
    assert (stats.decisions, stats.quarantined) == (sent, 0) and client.xlen(STREAM) == 0
    assert lake.read(BRONZE_DECISIONS, columns=["event_id"]).table.num_rows == sent


def test_a_stream_the_sdk_created_has_the_group_so_a_full_redis_drains(start_redis, tmp_path, blueprints):
    """The SDK creates a stream with ingestion's group: Redis full before ingestion ever ran still drains."""
    client = start_redis("--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
    port = client.connection_pool.connection_kwargs["port"]
    sdk = LooperClient(f"redis://127.0.0.1:{port}/0", blueprints=blueprints, close_timeout_s=0.0)
    sdk.get_decision("t_notify", "u0", FEATURES, ts=TS)  # one event: the stream and the group, one script
    assert [g["name"] for g in client.xinfo_groups(STREAM)] == [events.INGEST_GROUP.encode()]
    batch = 0
    while sdk.stats()["events_buffered"] == 0:  # until Redis refuses (the SDK keeps what it cannot send)
        batch += 1
        sdk.get_decisions("t_notify", [(f"u{batch}-{i}", FEATURES) for i in range(500)], ts=TS)
    kept, in_stream = sdk.stats()["events_buffered"], client.xlen(STREAM)
    assert client.info("memory")["used_memory"] > 4 * 1024 * 1024 - 200_000  # full
    stats = ingest_events(client, Lake(str(tmp_path / "lake")), blueprints, streams=[STREAM], batch_size=5_000)
    assert (stats.decisions, stats.quarantined) == (in_stream, 0) and client.xlen(STREAM) == 0  # drained at maxmemory
    assert sdk.flush() == 0  # room again: what the SDK kept goes out
    assert client.xlen(STREAM) == kept


def test_the_ingest_job_on_a_full_redis_says_so_on_one_line(start_redis, tmp_path, blueprints):
    client = start_redis("--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
    stream = events.stream_key("notification_send")
    while True:  # what fills it is never read: the group cannot be created
        try:
            client.xadd(stream, {"e": "x" * 1000})
        except redis.OutOfMemoryError:
            break
    port = client.connection_pool.connection_kwargs["port"]
    env = {**os.environ, "LOOPER_REDIS_URL": f"redis://127.0.0.1:{port}/0", "LOOPER_HOME": str(ROOT),
           "LOOPER_LAKE_ROOT": str(tmp_path / "lake"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "jobs" / "ingest_events.py"), "--blueprint",
                           "notification_send"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "OOM" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ingest_events: Redis is at maxmemory and refused to create the consumer group "
                           f"{events.INGEST_GROUP} on {stream}") and "CONFIG SET maxmemory" in last


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_a_redis_that_evicts_any_key_is_refused(start_redis, tmp_path, blueprints, policy):
    client = start_redis("--maxmemory-policy", policy)
    client.xadd(STREAM, {"e": _payload(blueprints, 0)})
    with pytest.raises(RedisPolicyError, match=f"maxmemory-policy is {policy}: .* set it to noeviction"):
        ingest_events(client, Lake(str(tmp_path / "lake")), blueprints, streams=[STREAM])
    assert client.xlen(STREAM) == 1  # nothing read, nothing lost


@pytest.mark.parametrize("policy", ["noeviction", "volatile-lru", "volatile-ttl"])
def test_a_redis_that_never_evicts_a_stream_is_accepted(start_redis, policy):
    assert check_eviction_policy(start_redis("--maxmemory-policy", policy)) == policy
