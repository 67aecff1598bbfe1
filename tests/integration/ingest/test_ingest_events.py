"""ingest_events: stream to bronze with delta-rs (no Spark), exactly once across reruns, crashes and concurrent runs."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime

import pytest
import redis

from looper_common.contracts import events
from looper_common.ingest.streams import event_streams, ingest_events
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE
from looper_common.sdk.client import LooperClient
from tests.conftest import FEATURES, make_blueprint

pytestmark = pytest.mark.integration
TS = datetime(2026, 1, 3, 9, tzinfo=UTC)
STREAM = events.stream_key("t_notify")


@pytest.fixture
def blueprints():
    blueprint = make_blueprint()
    return {blueprint.name: blueprint}


@pytest.fixture
def local_lake(tmp_path) -> Lake:
    """A lake with no Spark session: any request that needed Spark would raise."""
    lake = Lake(str(tmp_path / "lake"))
    lake.ensure_tables()
    return lake


def _send(redis_url: str, blueprints, n_decisions: int = 50, n_observations: int = 20) -> None:
    client = LooperClient(redis_url, blueprints=blueprints)
    decisions = client.get_decisions("t_notify", [(f"u{i}", FEATURES) for i in range(n_decisions)], ts=TS)
    client.log_observations_batch([(d.decision_id, {"click": 1}, TS) for d in decisions[:n_observations]])


def _ids(lake: Lake, spec) -> list[str]:
    return lake.read(spec, columns=["event_id"]).table["event_id"].to_pylist()


def test_ingests_bronze_and_quarantine_once_without_spark(local_lake, redis_client, redis_url, blueprints):
    _send(redis_url, blueprints)
    redis_client.xadd(STREAM, {"e": "{not json"})
    redis_client.xadd(STREAM, {"e": json.dumps({"kind": "observation", "event_id": "o-bad", "decision_id": "x",
                                                "blueprint": "t_notify", "name": "click",
                                                "ts": int(TS.timestamp() * 1000)})})
    first = ingest_events(redis_client, local_lake, blueprints, streams=event_streams(redis_client), batch_size=30)
    assert (first.events, first.decisions, first.observations, first.quarantined) == (72, 50, 20, 2)
    assert first.batches == 3
    assert sorted(_ids(local_lake, BRONZE_DECISIONS)) == sorted(set(_ids(local_lake, BRONZE_DECISIONS)))
    quarantine = local_lake.read(QUARANTINE).table.to_pylist()
    assert {r["event_id"]: r["reason"] for r in quarantine}["o-bad"] == "missing field(s): value"
    assert redis_client.xlen(STREAM) == 0  # trimmed after the commit
    decisions = local_lake.read(BRONZE_DECISIONS).table
    assert set(decisions["ts"].to_pylist()) == {TS} and set(decisions["date"].to_pylist()) == {date(2026, 1, 3)}

    again = ingest_events(redis_client, local_lake, blueprints, streams=event_streams(redis_client))
    assert again.events == 0
    assert len(_ids(local_lake, BRONZE_DECISIONS)) == 50 and len(_ids(local_lake, BRONZE_OBSERVATIONS)) == 20


def test_crash_between_commit_and_ack_leaves_no_duplicate(local_lake, redis_client, redis_url, blueprints):
    _send(redis_url, blueprints)

    class Crash(RuntimeError):
        pass

    def crash(batch: int) -> None:
        raise Crash(f"killed after committing batch {batch}")

    with pytest.raises(Crash):
        ingest_events(redis_client, local_lake, blueprints, streams=[STREAM], batch_size=1000, on_committed=crash)
    assert len(_ids(local_lake, BRONZE_DECISIONS)) == 50  # committed ...
    assert redis_client.xpending(STREAM, events.INGEST_GROUP)["pending"] == 70  # ... but not acknowledged
    assert redis_client.xlen(STREAM) == 70  # and not trimmed

    rerun = ingest_events(redis_client, local_lake, blueprints, streams=[STREAM], batch_size=1000)
    assert rerun.events == 70 and rerun.decisions == 0 and rerun.observations == 0
    assert len(_ids(local_lake, BRONZE_DECISIONS)) == 50
    assert len(_ids(local_lake, BRONZE_OBSERVATIONS)) == 20
    assert redis_client.xpending(STREAM, events.INGEST_GROUP)["pending"] == 0
    assert redis_client.xlen(STREAM) == 0


def test_two_ingestions_at_once_duplicate_nothing(tmp_path, redis_client, redis_url, blueprints):
    _send(redis_url, blueprints, n_decisions=3_000, n_observations=1_000)
    root = str(tmp_path / "lake")
    Lake(root).ensure_tables()
    crashed = []

    def crash(batch: int) -> None:
        raise RuntimeError("killed before the acknowledgement")

    # A first run commits and dies: both runs below replay its pending entries, and insert them at the same time.
    with pytest.raises(RuntimeError):
        ingest_events(redis_client, Lake(root), blueprints, streams=[STREAM], batch_size=500, on_committed=crash)

    def run() -> None:
        try:
            ingest_events(redis.Redis.from_url(redis_url), Lake(root), blueprints, streams=[STREAM], batch_size=500)
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            crashed.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not crashed
    decisions, observations = _ids(Lake(root), BRONZE_DECISIONS), _ids(Lake(root), BRONZE_OBSERVATIONS)
    assert len(decisions) == len(set(decisions)) == 3_000
    assert len(observations) == len(set(observations)) == 1_000
    assert redis_client.xpending(STREAM, events.INGEST_GROUP)["pending"] == 0


def test_a_date_python_cannot_hold_is_quarantined_and_the_batch_goes_on(local_lake, redis_client, redis_url,
                                                                        blueprints):
    client = LooperClient(redis_url, blueprints=blueprints)
    near = client.get_decision("t_notify", "u1", FEATURES, ts=TS)
    payload = {
        "kind": "decision", "decision_id": "far", "blueprint": "t_notify",
        "blueprint_version": blueprints["t_notify"].version, "unit_id": "u2", "features": FEATURES,
        "action": "send", "propensity": 0.5, "action_probs": {"send": 0.5, "skip": 0.5}, "is_default": False,
    }
    far = {  # 10000-01-01 (date32 holds it, datetime.date does not), year -283229, 1e20 ms
        "far-future": 253_402_300_800_000, "far-past": -9_000_000_000_000_000, "1e20": 10**20,
    }
    for event_id, ts in far.items():
        redis_client.xadd(STREAM, {"e": json.dumps({**payload, "event_id": event_id, "ts": ts})})
    stats = ingest_events(redis_client, local_lake, blueprints, streams=[STREAM])
    assert (stats.events, stats.decisions, stats.quarantined) == (4, 1, 3)
    assert ingest_events(redis_client, local_lake, blueprints, streams=[STREAM]).events == 0
    assert redis_client.xlen(STREAM) == 0
    reasons = {r["event_id"]: r["reason"] for r in local_lake.read(QUARANTINE).table.to_pylist()}
    assert reasons == {event_id: f"ts: {ts} is outside years 1-9999" for event_id, ts in far.items()}
    decisions = local_lake.read(BRONZE_DECISIONS).table  # every partition value parses as a date
    assert decisions["event_id"].to_pylist() == [near.decision_id]
    assert set(decisions["date"].to_pylist()) == {date(2026, 1, 3)}


def test_default_reason_is_stored_in_bronze_and_null_when_absent(local_lake, redis_client, blueprints):
    base = {
        "kind": "decision", "blueprint": "t_notify", "blueprint_version": blueprints["t_notify"].version,
        "unit_id": "u1", "ts": int(TS.timestamp() * 1000), "features": FEATURES, "action": "skip",
        "propensity": 1.0, "action_probs": {"send": 0.0, "skip": 1.0}, "is_default": True,
    }
    redis_client.xadd(STREAM, {"e": json.dumps({**base, "event_id": "a", "decision_id": "a",
                                                "default_reason": "circuit_open"})})
    redis_client.xadd(STREAM, {"e": json.dumps({**base, "event_id": "b", "decision_id": "b"})})
    assert ingest_events(redis_client, local_lake, blueprints, streams=[STREAM]).decisions == 2
    rows = local_lake.read(BRONZE_DECISIONS, columns=["event_id", "default_reason"]).table.to_pylist()
    assert sorted((r["event_id"], r["default_reason"]) for r in rows) == [("a", "circuit_open"), ("b", None)]


def test_challenger_fields_are_stored_in_bronze_and_null_when_absent(local_lake, redis_client, blueprints):
    base = {
        "kind": "decision", "blueprint": "t_notify", "blueprint_version": blueprints["t_notify"].version,
        "unit_id": "u1", "ts": int(TS.timestamp() * 1000), "features": FEATURES, "action": "send",
        "propensity": 0.9, "action_probs": {"send": 0.9, "skip": 0.1}, "is_default": False, "policy_version": "p1",
    }
    shadow = {"shadow_version": "p2", "shadow_action": "skip", "shadow_scores": {"send": 0.2, "skip": 0.4}}
    for event_id, extra in (("s", shadow), ("c", {"variant": "canary"}), ("n", {})):
        redis_client.xadd(STREAM, {"e": json.dumps({**base, "event_id": event_id, "decision_id": event_id, **extra})})
    assert ingest_events(redis_client, local_lake, blueprints, streams=[STREAM]).decisions == 3
    columns = ["event_id", "variant", "shadow_version", "shadow_action", "shadow_scores"]
    rows = {r["event_id"]: r for r in local_lake.read(BRONZE_DECISIONS, columns=columns).table.to_pylist()}
    assert rows["s"] == {"event_id": "s", "variant": None, "shadow_version": "p2", "shadow_action": "skip",
                         "shadow_scores": [("send", 0.2), ("skip", 0.4)]}
    assert rows["c"]["variant"] == "canary" and rows["c"]["shadow_action"] is None
    assert all(v is None for k, v in rows["n"].items() if k != "event_id")


def test_events_left_in_the_stream_key_before_the_hash_tag_are_drained(local_lake, redis_client, redis_url,
                                                                         blueprints):
    """``looper:events:<bp>`` (the layout before ``{<bp>}``) is drained too, and holds the watermark back."""
    from looper_common.ingest.watermark import stream_watermark

    _send(redis_url, blueprints, n_decisions=5, n_observations=2)
    legacy = events.legacy_stream_key("t_notify")
    for _, fields in redis_client.xrange(STREAM):  # as an SDK of the earlier layout left them
        redis_client.xadd(legacy, fields)
    redis_client.delete(STREAM)
    _send(redis_url, blueprints, n_decisions=3, n_observations=0)
    assert STREAM == "looper:events:{t_notify}" and event_streams(redis_client, "t_notify") == [STREAM, legacy]
    first_legacy_ms = int(redis_client.xrange(legacy, count=1)[0][0].split(b"-")[0])
    assert stream_watermark(redis_client, "t_notify").timestamp() * 1000 < first_legacy_ms

    done = ingest_events(redis_client, local_lake, blueprints, streams=event_streams(redis_client))
    assert (done.decisions, done.observations, done.quarantined) == (8, 2, 0)
    assert redis_client.xlen(legacy) == redis_client.xlen(STREAM) == 0
    assert events.blueprint_of_stream(legacy) == events.blueprint_of_stream(STREAM) == "t_notify"
