"""The ingestion watermark: from the stream ids ingestion committed, kept monotone in monitoring/ingest_watermark."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from looper_common.contracts import events
from looper_common.ingest.streams import ingest_events
from looper_common.ingest.watermark import (
    join_deadline,
    join_is_due,
    read_watermarks,
    record_watermarks,
    stream_watermark,
)
from looper_common.lake.engine import Lake
from looper_common.lake.tables import QUARANTINE
from tests.conftest import make_blueprint

pytestmark = pytest.mark.integration
STREAM = events.stream_key("t_notify")
T0 = datetime(2026, 1, 2, 23, 30, tzinfo=UTC)


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _redis_now(redis_client) -> datetime:
    seconds, micros = redis_client.time()
    return datetime.fromtimestamp(seconds + micros / 1e6, UTC)


@pytest.fixture
def local_lake(tmp_path) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    lake.ensure_tables()
    return lake


def _arrive(redis_client, at: datetime, seq: int = 0) -> str:
    """An entry that arrived at ``at`` (an explicit stream id); its payload is quarantined, i.e. committed too."""
    return redis_client.xadd(STREAM, {"e": "{not json"}, id=f"{_ms(at)}-{seq}").decode()


def test_watermark_follows_what_ingestion_committed(local_lake, redis_client):
    blueprint = make_blueprint()
    # a stream never ingested: everything from its first entry on is uncommitted
    _arrive(redis_client, T0)
    _arrive(redis_client, T0 + timedelta(minutes=40))
    assert stream_watermark(redis_client, "t_notify") == T0 - timedelta(milliseconds=1)
    assert record_watermarks(redis_client, local_lake, ["t_notify"]) == {"t_notify": T0 - timedelta(milliseconds=1)}
    assert not join_is_due(local_lake, blueprint, date(2026, 1, 2))

    # drained, nothing pending: committed through Redis' clock
    before = _redis_now(redis_client) - timedelta(milliseconds=1)
    ingest_events(redis_client, local_lake, {"t_notify": blueprint}, streams=[STREAM])
    assert local_lake.read(QUARANTINE).table.num_rows == 2
    mark = record_watermarks(redis_client, local_lake, ["t_notify"])["t_notify"]
    assert before <= mark <= _redis_now(redis_client)
    assert read_watermarks(local_lake) == {"t_notify": mark}
    assert join_is_due(local_lake, blueprint, date(2026, 1, 2))

    # read but not acknowledged (a run that died before its commit): held at that entry
    # (an explicit id before Redis' clock: an entry the stored watermark already covers)
    later = T0 + timedelta(days=30)
    _arrive(redis_client, later)
    _arrive(redis_client, later, seq=1)
    redis_client.xreadgroup(events.INGEST_GROUP, "other", {STREAM: ">"}, count=1)
    assert stream_watermark(redis_client, "t_notify") == later - timedelta(milliseconds=1)
    # a watermark once recorded never goes back
    assert record_watermarks(redis_client, local_lake, ["t_notify"]) == {"t_notify": mark}
    assert read_watermarks(local_lake) == {"t_notify": mark}


def test_a_blueprint_without_traffic_is_committed_through_now(local_lake, redis_client):
    before = _redis_now(redis_client) - timedelta(milliseconds=1)
    mark = record_watermarks(redis_client, local_lake, ["t_quiet"])["t_quiet"]
    assert before <= mark <= _redis_now(redis_client)


def test_the_join_waits_for_the_end_of_the_day_plus_the_allowed_lateness(local_lake, redis_client):
    blueprint = make_blueprint(allowed_lateness="2h")
    assert join_deadline(blueprint, date(2026, 1, 2)) == datetime(2026, 1, 3, 2, tzinfo=UTC)
    assert not join_is_due(local_lake, blueprint, date(2026, 1, 2))  # nothing recorded yet
    _arrive(redis_client, datetime(2026, 1, 3, 2, 0, 0, 1000, tzinfo=UTC))  # uncommitted from 02:00:00.001
    record_watermarks(redis_client, local_lake, ["t_notify"])
    assert join_is_due(local_lake, blueprint, date(2026, 1, 2))
    assert not join_is_due(local_lake, blueprint, date(2026, 1, 3))
