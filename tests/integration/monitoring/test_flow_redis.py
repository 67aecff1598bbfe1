"""What the monitor reads from a real redis-server: the stream's backlog, memory, and the SDK's lost events."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from looper_common.contracts import events
from looper_common.ingest.redis_checks import ensure_group
from looper_common.lake.engine import Lake
from looper_common.lake.tables import MONITOR_ALERTS, MONITOR_FRESHNESS
from looper_common.monitoring.flow import redis_health, sdk_delivery
from looper_common.monitoring.monitor import record_day
from looper_common.sdk.stats import SdkStats
from tests.conftest import make_blueprint

pytestmark = pytest.mark.integration
BLUEPRINT = "t_notify"


def _values(metrics) -> dict[str, float | None]:
    return {m.name: m.value for m in metrics}


def test_redis_health_reads_the_backlog_and_the_memory_share(redis_process):
    server = redis_process("--maxmemory", "64mb", "--maxmemory-policy", "noeviction")
    client = server.client
    assert _values(redis_health(client, BLUEPRINT))["stream_length"] == 0  # no stream yet: no group either
    stream = events.stream_key(BLUEPRINT)
    for i in range(10):
        client.xadd(stream, {"payload": f"e{i}"})
    ensure_group(client, stream)
    client.xreadgroup(events.INGEST_GROUP, "test", {stream: ">"}, count=4)  # 4 read, none acknowledged
    values = _values(redis_health(client, BLUEPRINT))
    assert values["stream_length"] == 10
    assert values["stream_pending"] == 4
    assert values["stream_lag"] == 6
    used = client.info("memory")["used_memory"]
    assert 0.5 * used < values["redis_memory_bytes"] < 2 * used
    assert values["redis_memory_share"] == pytest.approx(values["redis_memory_bytes"] / (64 * 1024 * 1024))


def test_redis_health_without_maxmemory_has_no_share(redis_client):
    values = _values(redis_health(redis_client, BLUEPRINT))
    assert values["redis_memory_bytes"] > 0 and values["redis_memory_share"] is None


def _report(client, sent: int, dropped: int, stats: SdkStats) -> None:
    """What an SDK process adds to the hash, written by the SDK's own code (``sdk.stats``)."""
    stream = events.stream_key(BLUEPRINT)
    assert stats.report(client, {stream: sent}, {stream: dropped} if dropped else {}) is None


def test_sdk_delivery_counts_the_events_dropped_since_the_previous_day(redis_client):
    assert sdk_delivery(redis_client, BLUEPRINT, {}) == []  # no SDK has reported
    stats = SdkStats(interval_s=0)
    _report(redis_client, 1000, 0, stats)
    first = _values(sdk_delivery(redis_client, BLUEPRINT, {}))
    assert first == {"sdk_events_dropped": 0, "sdk_dropped_share": 0.0, "sdk_events_dropped_total": 0,
                     "sdk_events_sent_total": 1000}
    _report(redis_client, 1900, 100, stats)  # cumulative per process: 900 more sent, 100 dropped
    later = _values(sdk_delivery(redis_client, BLUEPRINT, {k: v for k, v in first.items() if k.endswith("_total")}))
    assert later["sdk_events_dropped"] == 100 and later["sdk_dropped_share"] == 0.1
    assert later["sdk_events_dropped_total"] == 100 and later["sdk_events_sent_total"] == 1900
    # a hash reset below the recorded totals counts from zero
    reset = _values(sdk_delivery(redis_client, BLUEPRINT, {"sdk_events_dropped_total": 500.0,
                                                           "sdk_events_sent_total": 5000.0}))
    assert reset["sdk_events_dropped"] == 100


def test_the_monitor_warns_on_the_day_the_sdk_dropped_events(tmp_path, redis_client):
    blueprint = make_blueprint()
    lake = Lake(str(tmp_path / "lake"))
    lake.ensure_tables()
    stats = SdkStats(interval_s=0)
    start = date(2026, 3, 1)
    sent_dropped = [(500, 0), (900, 7), (1400, 7)]  # 7 events given up on the second day only
    runs = []
    for i, (sent, dropped) in enumerate(sent_dropped):
        _report(redis_client, sent, dropped, stats)
        runs.append(record_day(lake, blueprint, start + timedelta(days=i), redis_client))
    assert [[(a.check, a.value, a.severity) for a in run.alerts] for run in runs] == [
        [], [("sdk_events_dropped", 7.0, "warning")], []]
    assert not runs[1].critical  # a warning: the task does not fail on it
    rows = lake.read(MONITOR_ALERTS).table.to_pylist()
    assert [(r["date"], r["check"], r["value"]) for r in rows] == [(start + timedelta(days=1), "sdk_events_dropped",
                                                                    7.0)]
    # a rerun of the second day counts from the first day's totals again: the same alert
    rerun = record_day(lake, blueprint, start + timedelta(days=1), redis_client)
    assert [(a.check, a.value) for a in rerun.alerts] == [("sdk_events_dropped", 7.0)]
    recorded = {(r["date"], r["check"]): r["value"] for r in lake.read(MONITOR_FRESHNESS).table.to_pylist()
                if r["check"].startswith("sdk_")}
    assert recorded[(start + timedelta(days=2), "sdk_events_dropped_total")] == 7.0
    assert recorded[(start + timedelta(days=2), "sdk_dropped_share")] == 0.0
