"""The stream cursor against a real redis-server: pending entries first, ack after commit, safe trim."""

from __future__ import annotations

import pytest
import redis

from looper_common.contracts import events
from looper_common.ingest import stream_cursor

pytestmark = pytest.mark.integration
STREAM = events.stream_key("t_notify")


def _fill(client: redis.Redis, n: int) -> list[str]:
    return [client.xadd(STREAM, {events.PAYLOAD_FIELD: f"p{i}"}).decode() for i in range(n)]


def test_reads_pending_entries_first_then_new_ones(redis_client):
    ids = _fill(redis_client, 5)
    first = stream_cursor.StreamCursor(redis_client, STREAM)
    assert first.read(3) == [(STREAM, i, f"p{n}".encode()) for n, i in enumerate(ids[:3])]
    # a crash before the ack: the next run reads the same three again (pending), then the rest
    again = stream_cursor.StreamCursor(redis_client, STREAM)
    assert [sid for _, sid, _ in again.read(10)] == ids[:3]
    assert [sid for _, sid, _ in again.read(10)] == ids[3:]
    assert again.read(10) == [] and again.done


def test_an_entry_without_the_event_field_has_no_payload(redis_client):
    redis_client.xadd(STREAM, {"other": "x"})
    redis_client.xadd(STREAM, {"other": "x", events.PAYLOAD_FIELD: "p"})
    cursor = stream_cursor.StreamCursor(redis_client, STREAM)
    assert [payload for _, _, payload in cursor.read(10)] == [None, b"p"]


def test_acknowledge_acks_every_id_and_trims_only_below_the_oldest_unacked(redis_client, monkeypatch):
    monkeypatch.setattr(stream_cursor, "ACK_PER_COMMAND", 3)  # several XACKs
    ids = _fill(redis_client, 10)
    cursor = stream_cursor.StreamCursor(redis_client, STREAM)
    read = [sid for _, sid, _ in cursor.read(10)]
    assert read == ids
    cursor.acknowledge(read[:7])
    pending = redis_client.xpending_range(STREAM, events.INGEST_GROUP, min="-", max="+", count=100)
    assert [p["message_id"].decode() for p in pending] == ids[7:]
    assert [sid.decode() for sid, _ in redis_client.xrange(STREAM)] == ids[7:]  # unacked entries stay
    cursor.acknowledge(read[7:])
    assert redis_client.xpending(STREAM, events.INGEST_GROUP)["pending"] == 0
    assert redis_client.xlen(STREAM) == 0


def test_entries_added_after_the_run_started_wait_for_the_next_run(redis_client):
    ids = _fill(redis_client, 3)
    cursor = stream_cursor.StreamCursor(redis_client, STREAM)
    later = _fill(redis_client, 2)
    assert [sid for _, sid, _ in cursor.read(3)] == ids
    assert cursor.read(10) == []
    cursor.acknowledge(ids)
    assert [sid for _, sid, _ in stream_cursor.StreamCursor(redis_client, STREAM).read(10)] == later


def test_an_error_redis_returns_is_raised(redis_client):
    _fill(redis_client, 2)
    cursor = stream_cursor.StreamCursor(redis_client, STREAM)
    redis_client.delete(STREAM)  # the group goes with the stream
    with pytest.raises(redis.ResponseError, match="NOGROUP"):
        cursor.read(10)
