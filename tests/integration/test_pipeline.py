"""SDK -> Redis Stream -> ingest_events (bronze), and bronze -> join_feedback with exact labels of crafted decisions."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from looper_common.contracts import events, ids
from looper_common.labels import join as feedback
from looper_common.labels.join import join_feedback
from looper_common.lake.tables import (
    BRONZE_DECISIONS,
    BRONZE_OBSERVATIONS,
    JOIN_STATS,
    QUARANTINE,
    SILVER_EXAMPLES,
)
from looper_common.sdk.client import LooperClient
from tests.conftest import FEATURES, make_blueprint

pytestmark = pytest.mark.integration
RUN_DATE = date(2026, 1, 2)


def at(day: int, hour: int, minute: int = 0, ms: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC) + timedelta(milliseconds=ms)


@pytest.fixture
def blueprints():
    main = make_blueprint()
    other = make_blueprint(name="t_other")
    return {main.name: main, other.name: other}


def _log_crafted_traffic(client: LooperClient, redis_client) -> dict[str, str]:
    dec = {}
    for name, ts in {"d1": at(2, 10), "d2": at(2, 12), "d3": at(2, 15), "d4": at(2, 23), "d5": at(1, 21)}.items():
        dec[name] = client.get_decision("t_notify", f"user_{name}", FEATURES, ts=ts).decision_id
    log = client.log_observations
    log(dec["d1"], {"click": True}, ts=at(2, 10, 30))             # inside
    log(dec["d1"], {"click": 1}, ts=at(2, 11))                    # exactly at the window's end
    log(dec["d1"], {"click": 1}, ts=at(2, 9, 59))                 # before the decision: early
    log(dec["d1"], {"purchase": 5.0, "rating": 3}, ts=at(2, 10, 5))
    log(dec["d1"], {"purchase": 7.0}, ts=at(2, 12))               # 2h window's exact end
    log(dec["d1"], {"rating": 4}, ts=at(2, 11, 50))
    log(dec["d1"], {"click": 1}, ts=at(2, 10, 45), blueprint="t_other")  # wrong blueprint
    log(dec["d2"], {"click": 1}, ts=at(2, 13, 0, ms=1))           # 1 ms after the window: late
    log(dec["d3"], {"click": 1}, ts=at(2, 15, 10))
    log(dec["d3"], {"click": 1}, ts=at(2, 15, 10))                # retried: same event id
    log(dec["d4"], {"click": 1}, ts=at(2, 23, 30))                # matures on Jan 3
    log(dec["d5"], {"click": 1}, ts=at(1, 21, 30))                # matured on Jan 1
    unknown = ids.new_decision_id(ids.blueprint_tag("t_notify"), int(at(2, 8).timestamp() * 1000))
    log(unknown, {"click": 1}, ts=at(2, 9))                       # orphan
    stream = events.stream_key("t_notify")
    redis_client.xadd(stream, {"e": "{not json"})
    redis_client.xadd(stream, {"e": json.dumps({"kind": "observation", "event_id": "o-bad",
                                                "decision_id": dec["d1"], "blueprint": "t_notify",
                                                "name": "click", "ts": int(at(2, 10).timestamp() * 1000)})})
    redis_client.xadd(stream, {"e": json.dumps({
        "kind": "decision", "event_id": "d-bad", "decision_id": "d-bad", "blueprint": "t_notify",
        "blueprint_version": "x", "unit_id": "u", "ts": int(at(2, 10).timestamp() * 1000), "features": FEATURES,
        "action": "send",
        "propensity": 0, "action_probs": {"send": 1.0}, "is_default": False})})
    redis_client.xadd(events.stream_key("ghost"), {"e": json.dumps({"kind": "observation"})})
    return dec


def test_sdk_to_bronze_quarantines_what_is_bad(lake, redis_client, redis_url, blueprints):
    from looper_common.ingest.streams import event_streams, ingest_events

    client = LooperClient(redis_url, blueprints=blueprints)
    _log_crafted_traffic(client, redis_client)

    first = ingest_events(redis_client, lake, blueprints, streams=event_streams(redis_client))
    assert first.decisions == 5
    assert first.observations == 13  # 14 sent, one retry deduplicated
    assert first.quarantined == 4
    quarantine = {r["event_id"]: r["reason"] for r in lake.read(QUARANTINE).table.to_pylist()}
    assert quarantine["o-bad"] == "missing field(s): value"
    assert quarantine["d-bad"] == "propensity: 0 outside (0, 1]"
    assert any("malformed JSON" in reason for reason in quarantine.values())
    ghost = [reason for key, reason in quarantine.items() if key.startswith(f"stream:{events.stream_key('ghost')}:")]
    assert ghost == ["missing field(s): event_id, decision_id, blueprint, name, value, ts"]
    assert all(redis_client.xlen(s) == 0 for s in event_streams(redis_client))  # trimmed after commit
    assert ingest_events(redis_client, lake, blueprints, streams=event_streams(redis_client)).events == 0


def _bronze(lake) -> dict[str, str]:
    """The crafted decisions and observations as bronze rows (what ingestion commits for them)."""
    decisions = {"d1": at(2, 10), "d2": at(2, 12), "d3": at(2, 15), "d4": at(2, 23), "d5": at(1, 21)}
    rows = [{"event_id": f"e-{d}", "decision_id": d, "blueprint": "t_notify", "blueprint_version": "v",
             "unit_id": f"user_{d}", "ts": ts, "features": {k: str(v).lower() for k, v in FEATURES.items()},
             "action": "send", "propensity": 0.5, "action_probs": {"send": 0.5, "skip": 0.5}, "scores": None,
             "policy_version": None, "is_default": False, "date": ts.date()} for d, ts in decisions.items()]
    observations = [
        ("d1", "click", 1.0, at(2, 10, 30)),               # inside
        ("d1", "click", 1.0, at(2, 11)),                   # exactly at the window's end
        ("d1", "click", 1.0, at(2, 9, 59)),                # before the decision: early
        ("d1", "purchase", 5.0, at(2, 10, 5)), ("d1", "rating", 3.0, at(2, 10, 5)),
        ("d1", "purchase", 7.0, at(2, 12)),                # 2h window's exact end
        ("d1", "rating", 4.0, at(2, 11, 50)),
        ("d2", "click", 1.0, at(2, 13, 0, ms=1)),          # 1 ms after the window: late
        ("d3", "click", 1.0, at(2, 15, 10)),
        ("d4", "click", 1.0, at(2, 23, 30)),               # matures on Jan 3
        ("d5", "click", 1.0, at(1, 21, 30)),               # matured on Jan 1
        ("unknown", "click", 1.0, at(2, 9)),               # orphan
    ]
    obs = [{"event_id": f"o{i}", "decision_id": d, "blueprint": "t_notify", "name": name, "value": value,
            "ts": ts, "date": ts.date()} for i, (d, name, value, ts) in enumerate(observations)]
    obs.append({"event_id": "o-other", "decision_id": "d1", "blueprint": "t_other", "name": "click",  # wrong blueprint
                "value": 1.0, "ts": at(2, 10, 45), "date": date(2026, 1, 2)})
    for spec, table in ((BRONZE_DECISIONS, rows), (BRONZE_OBSERVATIONS, obs)):
        arrow = pa.Table.from_pylist(table, schema=spec.schema)
        partitions = {c: sorted(set(arrow[c].to_pylist())) for c in spec.partition_by}
        assert lake.insert_new(spec, arrow, partitions) == len(table)
    return {d: d for d in decisions}


def _rows(lake, table) -> list[str]:
    """The table's rows as read back through delta-rs (what Spark wrote), in a stable order."""
    rows = lake.read(table).table.to_pylist()
    return sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)


def test_join_gives_exact_labels_and_is_idempotent(spark, lake, monkeypatch):
    lake.ensure_tables()  # as a job does: every table created by delta-rs, then written by Spark
    dec = _bronze(lake)

    stats = join_feedback(lake, make_blueprint(), RUN_DATE)
    examples = {
        (r["decision_id"], r["label"]): (r["value"], r["n_observations"])
        for r in lake.read(SILVER_EXAMPLES).table.to_pylist()
    }
    d1, d2, d3 = dec["d1"], dec["d2"], dec["d3"]
    assert examples == {
        (d1, "clicked"): (1.0, 2), (d1, "clicks"): (2.0, 2), (d1, "revenue"): (12.0, 2),
        (d1, "best"): (7.0, 2), (d1, "last_rating"): (4.0, 2),
        (d2, "clicked"): (0.0, 0), (d2, "clicks"): (0.0, 0), (d2, "revenue"): (0.0, 0),
        (d2, "best"): (0.0, 0), (d2, "last_rating"): (-1.0, 0),
        (d3, "clicked"): (1.0, 1), (d3, "clicks"): (1.0, 1), (d3, "revenue"): (0.0, 0),
        (d3, "best"): (0.0, 0), (d3, "last_rating"): (-1.0, 0),
    }
    assert stats["matured_decisions"] == 3
    assert stats["examples"] == 15
    assert stats["observations_in_window"] == 12  # summed over the labels
    assert (stats["late_observations"], stats["early_observations"], stats["orphan_observations"]) == (1, 1, 1)
    assert stats["median_feedback_delay_s"] == pytest.approx(10 * 60)  # first feedback: 5 min, 10 min, ...
    orphan = lake.read(QUARANTINE, filters=[("source", "=", "join_feedback")]).table.to_pylist()
    assert [r["reason"] for r in orphan] == ["orphan observation: no decision with this decision_id"]
    assert [r["date"] for r in orphan] == [RUN_DATE]
    # timestamps Spark wrote (TIMESTAMP_MICROS) read back through delta-rs as the UTC instants written
    silver = lake.read(SILVER_EXAMPLES, filters=[("decision_id", "=", d1)]).table
    assert set(silver["ts"].to_pylist()) == {at(2, 10)}
    assert lake.read(JOIN_STATS).table.to_pylist() == [stats]
    # Spark reads the same rows (the join's writes are Spark's replaceWhere and MERGE INTO)
    assert lake.dataframe(SILVER_EXAMPLES).count() == 15

    tables = (BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE, SILVER_EXAMPLES, JOIN_STATS)
    before = {t.name: _rows(lake, t) for t in tables}
    assert join_feedback(lake, make_blueprint(), RUN_DATE) == stats
    assert {t.name: _rows(lake, t) for t in tables} == before

    # the plan for large runs (both sides shuffled, nothing broadcast) gives the same rows
    monkeypatch.setattr(feedback, "BROADCAST_MAX_DECISIONS", 0)
    assert join_feedback(lake, make_blueprint(), RUN_DATE) == stats
    assert {t.name: _rows(lake, t) for t in tables} == before


def test_crash_between_commit_and_ack_leaves_no_duplicate(lake, redis_client, redis_url, blueprints):
    from looper_common.ingest.streams import ingest_events

    client = LooperClient(redis_url, blueprints=blueprints)
    decisions = client.get_decisions("t_notify", [(f"u{i}", FEATURES) for i in range(50)], ts=at(3, 9))
    client.log_observations_batch([(d.decision_id, {"click": 1}, at(3, 9, 5)) for d in decisions[:20]])
    stream = events.stream_key("t_notify")

    class Crash(RuntimeError):
        pass

    def crash(batch: int) -> None:
        raise Crash(f"killed after committing batch {batch}")

    with pytest.raises(Crash):
        ingest_events(redis_client, lake, blueprints, streams=[stream], batch_size=1000, on_committed=crash)
    assert lake.read(BRONZE_DECISIONS).table.num_rows == 50  # committed ...
    assert redis_client.xpending(stream, events.INGEST_GROUP)["pending"] == 70  # ... but not acknowledged
    assert redis_client.xlen(stream) == 70  # and not trimmed

    rerun = ingest_events(redis_client, lake, blueprints, streams=[stream], batch_size=1000)
    assert rerun.events == 70 and rerun.decisions == 0 and rerun.observations == 0
    assert lake.read(BRONZE_DECISIONS).table.num_rows == 50
    assert lake.read(BRONZE_OBSERVATIONS).table.num_rows == 20
    assert redis_client.xpending(stream, events.INGEST_GROUP)["pending"] == 0
    assert redis_client.xlen(stream) == 0
