"""Duplicate event ids, through a real stream into a real lake: the same event once, a different one quarantined."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from looper_common.contracts import events
from looper_common.ingest.streams import ingest_events
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE
from tests.conftest import FEATURES, make_blueprint

pytestmark = pytest.mark.integration
STREAM = events.stream_key("t_notify")
DAY_MS = 86_400_000
TS = int(datetime(2026, 1, 3, 9, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def blueprints():
    blueprint = make_blueprint()
    return {blueprint.name: blueprint}


@pytest.fixture
def local_lake(tmp_path) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    lake.ensure_tables()
    return lake


def _decision(blueprints, event_id: str, ts: int = TS, unit_id: str = "u1") -> dict:
    return {
        "kind": "decision", "event_id": event_id, "decision_id": event_id, "blueprint": "t_notify",
        "blueprint_version": blueprints["t_notify"].version, "unit_id": unit_id, "ts": ts, "features": FEATURES,
        "action": "send", "propensity": 0.5, "action_probs": {"send": 0.5, "skip": 0.5}, "is_default": False,
    }


def _observation(event_id: str, ts: int = TS, value: float = 1.0) -> dict:
    return {"kind": "observation", "event_id": event_id, "decision_id": "d1", "blueprint": "t_notify",
            "name": "click", "value": value, "ts": ts}


def _send(redis_client, *payloads: dict) -> None:
    for payload in payloads:
        redis_client.xadd(STREAM, {"e": json.dumps(payload)})


def _run(redis_client, lake, blueprints, **options):
    return ingest_events(redis_client, lake, blueprints, streams=[STREAM], **options)


def _rows(lake, spec) -> list[dict]:
    return lake.read(spec).table.to_pylist()


def _conflicts(lake) -> list[str]:
    return [r["reason"] for r in _rows(lake, QUARANTINE) if r["reason"].startswith("duplicate_event_id_conflict")]


def test_within_a_batch_the_same_event_is_once_and_a_different_one_quarantined(redis_client, local_lake, blueprints):
    same = _decision(blueprints, "d1")
    _send(redis_client, same, same, _decision(blueprints, "d1", unit_id="other"), _observation("o1"),
          _observation("o1"), _observation("o1", value=2.0))
    stats = _run(redis_client, local_lake, blueprints)
    assert (stats.events, stats.decisions, stats.observations, stats.quarantined) == (6, 1, 1, 2)
    assert [r["unit_id"] for r in _rows(local_lake, BRONZE_DECISIONS)] == ["u1"]
    assert [r["value"] for r in _rows(local_lake, BRONZE_OBSERVATIONS)] == [1.0]
    assert sorted(_conflicts(local_lake)) == [
        "duplicate_event_id_conflict: event_id d1 is taken by a different event",
        "duplicate_event_id_conflict: event_id o1 is taken by a different event",
    ]


def test_across_batches_and_dates_the_same_event_is_once_and_a_different_one_quarantined(
    redis_client, local_lake, blueprints
):
    _send(redis_client, _decision(blueprints, "d1"), _observation("o1"))
    assert _run(redis_client, local_lake, blueprints).decisions == 1
    # later runs: the same events again (a retry), then the same ids with other values and on other dates
    _send(redis_client, _decision(blueprints, "d1"), _observation("o1"))
    again = _run(redis_client, local_lake, blueprints)
    assert (again.events, again.decisions, again.observations, again.quarantined, again.resent) == (2, 0, 0, 0, 2)
    _send(redis_client, _decision(blueprints, "d1", ts=TS + 2 * DAY_MS), _observation("o1", ts=TS - 3 * DAY_MS),
          _decision(blueprints, "d2"), _decision(blueprints, "d2", ts=TS + DAY_MS))
    later = _run(redis_client, local_lake, blueprints, batch_size=3)  # d2's two entries fall in two batches
    assert (later.events, later.decisions, later.observations, later.quarantined) == (4, 1, 0, 3)
    decisions = _rows(local_lake, BRONZE_DECISIONS)
    assert sorted(r["event_id"] for r in decisions) == ["d1", "d2"]
    assert {r["date"].isoformat() for r in decisions} == {"2026-01-03"}
    assert len(_rows(local_lake, BRONZE_OBSERVATIONS)) == 1
    assert sorted(_conflicts(local_lake)) == [
        "duplicate_event_id_conflict: event_id d1 is taken by a different event already in bronze/decisions",
        "duplicate_event_id_conflict: event_id d2 is taken by a different event already in bronze/decisions",
        "duplicate_event_id_conflict: event_id o1 is taken by a different event already in bronze/observations",
    ]
    assert redis_client.xlen(STREAM) == 0


def test_beyond_the_horizon_an_id_is_not_looked_for(redis_client, local_lake, blueprints):
    _send(redis_client, _decision(blueprints, "d1"))
    _run(redis_client, local_lake, blueprints)
    _send(redis_client, _decision(blueprints, "d1", ts=TS + 10 * DAY_MS))
    assert _run(redis_client, local_lake, blueprints, duplicate_horizon_days=7).decisions == 1
    assert _conflicts(local_lake) == []


def test_a_different_bad_event_under_a_quarantined_id_is_kept_too(redis_client, local_lake, blueprints):
    _send(redis_client, {**_observation("q1"), "value": "one"})
    _run(redis_client, local_lake, blueprints)
    _send(redis_client, {**_observation("q1"), "value": "two"})
    stats = _run(redis_client, local_lake, blueprints)
    assert (stats.quarantined, stats.resent) == (1, 0)
    _send(redis_client, {**_observation("q1"), "value": "one"})  # the first one again: already there
    stats = _run(redis_client, local_lake, blueprints)
    assert (stats.quarantined, stats.resent) == (0, 1)
    payloads = sorted(json.loads(r["payload"])["value"] for r in _rows(local_lake, QUARANTINE))
    assert payloads == ["one", "two"]
