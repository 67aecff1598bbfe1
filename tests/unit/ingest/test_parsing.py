"""parse_entries: the bronze rows of good events and the exact reasons of bad ones, on crafted payloads."""

from __future__ import annotations

import json

import pytest

from looper_common.contracts import events
from looper_common.ingest.parsing import SOURCE, parse_entries
from tests.conftest import FEATURES, make_blueprint

STREAM = events.stream_key("t_notify")
TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 20_454  # 2026-01-01 in days since the epoch
ARRIVED = f"{TS + 5_000}-0"

DECISION = {
    "kind": "decision", "event_id": "d1", "decision_id": "d1", "blueprint": "t_notify",
    "blueprint_version": "v1", "unit_id": "u1", "ts": TS, "features": FEATURES, "action": "send",
    "propensity": 0.95, "action_probs": {"send": 0.95, "skip": 0.05}, "scores": {"send": 0.7, "skip": 0.2},
    "policy_version": "p1", "is_default": False,
}
OBSERVATION = {
    "kind": "observation", "event_id": "o1", "decision_id": "d1", "blueprint": "t_notify",
    "name": "click", "value": 1, "ts": TS + 60_000,
}
DECISION_ROW = (
    "d1", "d1", "t_notify", "v1", "u1", TS, {"recency": "2.5", "visits": "3", "opted_in": "true", "country": "us"},
    "send", 0.95, {"send": 0.95, "skip": 0.05}, {"send": 0.7, "skip": 0.2}, "p1", False, None,
    None, None, None, None, DAY,  # no challenger fields (events.ROLLOUT_FIELDS)
)


@pytest.fixture(scope="module")
def blueprints():
    return {"t_notify": make_blueprint(), "t_other": make_blueprint(name="t_other")}


def _parse(blueprints, *payloads, stream=STREAM):
    entries = [
        (stream, f"{TS + 5_000}-{i}", p if p is None or isinstance(p, bytes | str) else json.dumps(p))
        for i, p in enumerate(payloads)
    ]
    return parse_entries(entries, blueprints)


def _reason(blueprints, payload, stream=STREAM) -> str:
    batch = _parse(blueprints, payload, stream=stream)
    assert batch.decisions.rows == [] and batch.observations.rows == []
    [row] = batch.quarantine.rows
    return row[3]


def test_good_decision_is_one_bronze_row(blueprints):
    batch = _parse(blueprints, DECISION)
    assert batch.decisions.rows == [DECISION_ROW]
    assert batch.observations.rows == [] and batch.quarantine.rows == []
    assert batch.decisions.partitions == {"blueprint": {"t_notify"}, "date": {DAY}}
    assert batch.entries == 1


def test_a_decision_with_challenger_fields_carries_them_to_its_row(blueprints):
    shadow = {**DECISION, "variant": "canary", "shadow_version": "p2", "shadow_action": "skip",
              "shadow_scores": {"send": 0.1, "skip": 0.3}}
    [row] = _parse(blueprints, shadow).decisions.rows
    assert row[-5:] == ("canary", "p2", "skip", {"send": 0.1, "skip": 0.3}, DAY)
    assert "shadow_action" in _reason(blueprints, {**DECISION, "shadow_action": 3})


def test_good_observation_is_one_bronze_row_with_a_float_value(blueprints):
    batch = _parse(blueprints, OBSERVATION)
    assert batch.observations.rows == [("o1", "d1", "t_notify", "click", 1.0, TS + 60_000, DAY)]
    assert type(batch.observations.rows[0][4]) is float
    assert batch.decisions.rows == [] and batch.quarantine.rows == []


def test_default_decision_takes_null_scores_and_policy_version(blueprints):
    event = {**DECISION, "scores": None, "policy_version": None, "is_default": True, "propensity": 1}
    del event["scores"]  # absent and null are the same for an optional field
    [row] = _parse(blueprints, event).decisions.rows
    assert row[8:14] == (1.0, {"send": 0.95, "skip": 0.05}, None, None, True, None)
    assert type(row[8]) is float


def test_default_reason_is_stored_and_must_be_a_string(blueprints):
    [row] = _parse(blueprints, {**DECISION, "is_default": True, "default_reason": "no_policy"}).decisions.rows
    assert row[13] == "no_policy"
    reason = _reason(blueprints, {**DECISION, "default_reason": 3})
    assert reason == "default_reason: expected a string, got the number 3"


def test_event_time_near_its_arrival_goes_to_its_day(blueprints):
    entries = [(STREAM, "5000-0", json.dumps({**OBSERVATION, "ts": -1}))]
    [row] = parse_entries(entries, blueprints).observations.rows
    assert row[5:] == (-1, -1)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("event_id", 7, "event_id: expected a string, got the number 7"),
        ("decision_id", ["d1"], "decision_id: expected a string, got an array"),
        ("blueprint", {"name": "t_notify"}, "blueprint: expected a string, got an object"),
        ("blueprint_version", 1.5, "blueprint_version: expected a string, got the number 1.5"),
        ("unit_id", 42, "unit_id: expected a string, got the number 42"),
        ("ts", float(TS), f"ts: expected integer epoch milliseconds, got the number {float(TS)!r}"),
        ("ts", str(TS), "ts: expected integer epoch milliseconds, got a string"),
        ("ts", True, "ts: expected integer epoch milliseconds, got a boolean"),
        ("features", [1, 2], "features: expected an object, got an array"),
        ("features", "recency=1", "features: expected an object, got a string"),
        ("action", True, "action: expected a string, got a boolean"),
        ("propensity", "0.95", "propensity: expected a number, got a string"),
        ("propensity", True, "propensity: expected a number, got a boolean"),
        ("action_probs", [0.95, 0.05], "action_probs: expected an object, got an array"),
        ("action_probs", {"send": "0.95", "skip": None}, "action_probs: non-numeric probability for send, skip"),
        ("scores", {"send": 0.7, "skip": False}, "scores: non-numeric score for skip"),
        ("scores", 0.7, "scores: expected an object, got the number 0.7"),
        ("policy_version", 3, "policy_version: expected a string, got the number 3"),
        ("is_default", "false", "is_default: expected true or false, got a string"),
        ("is_default", 0, "is_default: expected true or false, got the number 0"),
    ],
)
def test_decision_field_of_the_wrong_type_is_a_reason(blueprints, field, value, reason):
    assert _reason(blueprints, {**DECISION, field: value}) == reason


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("event_id", None, "missing field(s): event_id"),
        ("name", 3, "name: expected a string, got the number 3"),
        ("value", "1", "value: expected a number, got a string"),
        ("value", True, "value: expected a number, got a boolean"),
        ("value", {"clicks": 1}, "value: expected a number, got an object"),
        ("ts", 1.5, "ts: expected integer epoch milliseconds, got the number 1.5"),
    ],
)
def test_observation_field_of_the_wrong_type_is_a_reason(blueprints, field, value, reason):
    assert _reason(blueprints, {**OBSERVATION, field: value}) == reason


@pytest.mark.parametrize("kind", [events.DECISION, events.OBSERVATION])
def test_absent_or_null_required_fields_are_missing(blueprints, kind):
    base = DECISION if kind == events.DECISION else OBSERVATION
    required = events.DECISION_REQUIRED if kind == events.DECISION else events.OBSERVATION_REQUIRED
    for name in required:
        absent = {k: v for k, v in base.items() if k != name}
        assert _reason(blueprints, absent) == f"missing field(s): {name}"
        assert _reason(blueprints, {**base, name: None}) == f"missing field(s): {name}"


def test_every_failure_is_listed_in_order(blueprints):
    event = {
        **DECISION, "unit_id": None, "ts": "soon", "blueprint": "t_other", "action": "shout",
        "propensity": 0, "action_probs": {"send": "x"}, "features": {"recency": 1.0},
    }
    assert _reason(blueprints, event) == (
        "missing field(s): unit_id; ts: expected integer epoch milliseconds, got a string; "
        "action_probs: non-numeric probability for send; blueprint t_other sent on the stream of t_notify; "
        "propensity: 0 outside (0, 1]; action: shout is not an action of t_other; "
        "features: missing visits, opted_in, country"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"propensity": 0}, "propensity: 0 outside (0, 1]"),
        ({"propensity": 1.5}, "propensity: 1.5 outside (0, 1]"),
        ({"propensity": -0.25}, "propensity: -0.25 outside (0, 1]"),
        ({"action": "later"}, "action: later is not an action of t_notify"),
        ({"features": {"recency": 2.5, "country": "us"}}, "features: missing visits, opted_in"),
        ({"blueprint": "t_gone"}, "unknown blueprint t_gone; blueprint t_gone sent on the stream of t_notify"),
        ({"ts": 2**63}, f"ts: {2**63} is outside years 1-9999"),
    ],
)
def test_decision_value_checks(blueprints, change, reason):
    assert _reason(blueprints, {**DECISION, **change}) == reason


def test_event_on_another_blueprints_stream_is_quarantined_under_its_own_blueprint(blueprints):
    batch = _parse(blueprints, OBSERVATION, stream=events.stream_key("t_other"))
    assert batch.quarantine.rows == [(
        "o1", "t_notify", "observation", "blueprint t_notify sent on the stream of t_other",
        json.dumps(OBSERVATION), SOURCE, DAY,
    )]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "malformed JSON: empty payload"),
        (b"", "malformed JSON: empty payload"),
        ("{not json", "malformed JSON: object keys must be strings (byte 1)"),
        ('{"kind": "decision"} trailing', "malformed JSON: trailing characters (byte 22)"),
        ('{"kind": "observation"', "malformed JSON: input data was truncated"),
        ("[1, 2]", "malformed JSON: payload is an array, not an object"),
        ('"decision"', "malformed JSON: payload is a string, not an object"),
        ("7", "malformed JSON: payload is the number 7, not an object"),
        ("null", "malformed JSON: payload is null, not an object"),
        (b'{"kind": "decision", "unit_id": "\xff"}', "malformed JSON: not UTF-8 (invalid start byte)"),
    ],
)
def test_payload_that_is_not_a_json_object(blueprints, payload, reason):
    batch = _parse(blueprints, payload)
    stored = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    assert batch.quarantine.rows == [
        (f"stream:{STREAM}:{ARRIVED}", "t_notify", None, reason, stored or None, SOURCE, DAY)
    ]


@pytest.mark.parametrize(
    ("payload", "kind", "reason"),
    [
        ({}, None, "kind: null is not decision or observation"),
        ({"kind": "click", "event_id": "x1", "ts": "now"}, "click",
         "kind: click is not decision or observation; ts: expected integer epoch milliseconds, got a string"),
        ({"kind": 1, "event_id": "x1", "blueprint": "t_other"}, None,
         "kind: the number 1 is not decision or observation; blueprint t_other sent on the stream of t_notify"),
        ({"Kind": "decision", "event_id": "x1"}, None, "kind: null is not decision or observation"),
    ],
)
def test_unknown_kind(blueprints, payload, kind, reason):
    [row] = _parse(blueprints, payload).quarantine.rows
    assert (row[2], row[3]) == (kind, reason)


def test_huge_numbers(blueprints):
    assert _reason(blueprints, '{"kind": "observation", "value": 1e400}').startswith(
        "malformed JSON: number out of range"
    )
    big = 10**400
    assert _reason(blueprints, {**OBSERVATION, "value": big}) == f"value: the number {big} is beyond a double's range"
    assert _reason(blueprints, {**OBSERVATION, "ts": 10**30}) == f"ts: {10**30} is outside years 1-9999"
    assert _reason(blueprints, {**DECISION, "propensity": 1e-400}) == "propensity: 0.0 outside (0, 1]"
    [row] = _parse(blueprints, {**DECISION, "features": {**FEATURES, "visits": 10**30}}).decisions.rows
    assert row[6]["visits"] == str(10**30)


def test_duplicate_event_ids_same_event_once_a_different_one_quarantined(blueprints):
    first, again = {**DECISION, "unit_id": "first"}, {**DECISION, "unit_id": "again"}
    bad, bad_again = {**DECISION, "propensity": 0}, {**DECISION, "propensity": 2}
    batch = _parse(blueprints, first, first, again, OBSERVATION, OBSERVATION, bad, bad, bad_again)
    assert [row[4] for row in batch.decisions.rows] == ["first"]
    assert len(batch.observations.rows) == 1
    assert [(row[0], row[3]) for row in batch.quarantine.rows] == [
        (f"stream:{STREAM}:{TS + 5_000}-2", "duplicate_event_id_conflict: event_id d1 is taken by a different event"),
        ("d1", "propensity: 0 outside (0, 1]"),
        (f"stream:{STREAM}:{TS + 5_000}-7", "propensity: 2 outside (0, 1]"),
    ]
    assert batch.entries == 8


def test_key_given_twice_keeps_the_typed_decoders_message(blueprints):
    payload = json.dumps(OBSERVATION)[:-1] + ', "value": "one", "value": 1}'
    assert _reason(blueprints, payload) == "invalid event: Expected `float`, got `str` - at `$.value`"
