"""One validation, two places: what the SDK refuses at call time, ingestion quarantines, with the same reason."""

from __future__ import annotations

import json
import math
import time

import pytest

from looper_common.contracts import event_rules, events
from looper_common.contracts.event_rules import LooperError
from looper_common.ingest.parsing import parse_entries
from looper_common.sdk.requests import (
    check_decision_id,
    check_requests,
    compile_blueprint,
    observation_number,
    observation_payloads,
)
from tests.conftest import FEATURES, make_blueprint

STREAM = events.stream_key("t_notify")
NOW = int(time.time() * 1000)
DAY = event_rules.DAY_MS


@pytest.fixture(scope="module")
def blueprint():
    return make_blueprint()


def _decision(blueprint, unit_id: object = "u1", features: dict | None = None, ts: object = NOW) -> dict:
    return {
        "kind": "decision", "event_id": "d1", "decision_id": "d1", "blueprint": "t_notify",
        "blueprint_version": blueprint.version, "unit_id": unit_id, "ts": ts,
        "features": FEATURES if features is None else features, "action": "send", "propensity": 0.5,
        "action_probs": {"send": 0.5, "skip": 0.5}, "is_default": False,
    }


def _quarantine_reason(blueprint, event: dict) -> str:
    """What ingestion says of the event as the SDK's encoder (Python's json) would write it."""
    batch = parse_entries([(STREAM, f"{NOW}-0", json.dumps(event).encode())], {"t_notify": blueprint})
    assert batch.decisions.rows == [] and batch.observations.rows == []
    [row] = batch.quarantine.rows
    return row[3]


BAD_REQUESTS = {
    "NaN feature": ("u1", {**FEATURES, "recency": math.nan}),
    "+inf feature": ("u1", {**FEATURES, "recency": math.inf}),
    "-inf feature": ("u1", {**FEATURES, "recency": -math.inf}),
    "lone surrogate in a category": ("u1", {**FEATURES, "country": "\udc00"}),
    "lone surrogate in the unit id": ("u\ud800", FEATURES),
    "integer unit id": (42, FEATURES),
    "null unit id": (None, FEATURES),
    "oversize unit id": ("x" * 70_000, FEATURES),
    "oversize category": ("u1", {**FEATURES, "country": "é" * 40_000}),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_is_refused_by_the_sdk_with_ingestions_reason(blueprint, case):
    unit_id, features = BAD_REQUESTS[case]
    reason = _quarantine_reason(blueprint, _decision(blueprint, unit_id, features))
    if reason.startswith("payload:"):  # the size rule: the SDK measures the event it would send
        assert reason.startswith("payload: ") and "exceeds max_event_bytes (65536)" in reason
        with pytest.raises(LooperError, match=r"payload: \d+ bytes exceeds max_event_bytes \(65536\)"):
            check_requests(compile_blueprint(blueprint), [(unit_id, features)])
        return
    with pytest.raises(LooperError) as refused:
        check_requests(compile_blueprint(blueprint), [(unit_id, features)])
    assert str(refused.value).endswith(reason), (str(refused.value), reason)


def test_a_known_signature_still_has_its_values_checked(blueprint):
    compiled = compile_blueprint(blueprint)
    check_requests(compiled, [("u1", FEATURES)])  # the (names, types) signature is now known
    with pytest.raises(LooperError, match="features: recency is not a finite number"):
        check_requests(compiled, [("u1", {**FEATURES, "recency": math.nan})])


@pytest.mark.parametrize(
    "ts", [1e20, 10**20, 253_402_300_800_000, -9_000_000_000_000_000, NOW - 4_000 * DAY, NOW + 2 * DAY],
)
def test_a_time_ingestion_would_quarantine_is_refused_by_the_sdk(blueprint, ts):
    reason = _quarantine_reason(blueprint, _decision(blueprint, ts=int(ts)))
    with pytest.raises(LooperError) as refused:
        events.to_epoch_ms(ts)
    # the same rule; the SDK's arrival is its own clock, ingestion's the entry id
    assert str(refused.value).split(" (")[0] == reason.split(" (")[0]


@pytest.mark.parametrize("ts", [math.nan, math.inf, True, "2026-01-01"])
def test_a_ts_that_is_no_time_is_refused(ts):
    with pytest.raises(LooperError, match="^ts: "):
        events.to_epoch_ms(ts)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400])
def test_non_finite_observation_value_is_refused_and_quarantined_alike(blueprint, value):
    with pytest.raises(LooperError) as refused:
        observation_number("click", value)
    event = {"kind": "observation", "event_id": "o1", "decision_id": "d1", "blueprint": "t_notify",
             "name": "click", "value": float(value) if value != 10**400 else math.inf, "ts": NOW}
    assert str(refused.value) == f"observation 'click': {_quarantine_reason(blueprint, event)}"


def test_observation_name_with_a_lone_surrogate_is_refused_and_quarantined_alike(blueprint):
    with pytest.raises(LooperError) as refused:
        observation_number("cl\ud800ick", 1)
    event = {"kind": "observation", "event_id": "o1", "decision_id": "d1", "blueprint": "t_notify",
             "name": "cl\ud800ick", "value": 1.0, "ts": NOW}
    assert str(refused.value).endswith(_quarantine_reason(blueprint, event))


def test_what_the_sdk_accepts_ingestion_keeps(blueprint):
    compiled = compile_blueprint(blueprint)
    edge = [("u\U0001f600", {**FEATURES, "country": "日本", "recency": 1e308}), ("x" * 1_000, FEATURES)]
    check_requests(compiled, edge)
    for unit_id, features in edge:
        event = _decision(blueprint, unit_id, features, events.to_epoch_ms(NOW - 3_000 * DAY))
        batch = parse_entries([(STREAM, f"{NOW}-0", json.dumps(event).encode())], {"t_notify": blueprint})
        assert len(batch.decisions.rows) == 1 and batch.quarantine.rows == []


def _observation(decision_id: object, name: str = "click") -> dict:
    return {"kind": "observation", "event_id": "o1", "decision_id": decision_id, "blueprint": "t_notify",
            "name": name, "value": 1.0, "ts": NOW}


@pytest.mark.parametrize(
    "decision_id", [7, None, "\ud800", "d\udfff1", 1.5, True, ["d1"]], ids=repr,
)
def test_a_decision_id_ingestion_would_quarantine_is_refused_by_the_sdk(blueprint, decision_id):
    reason = _quarantine_reason(blueprint, _observation(decision_id))
    with pytest.raises(LooperError) as refused:
        check_decision_id(decision_id)
    assert str(refused.value).endswith(f": {reason}"), (str(refused.value), reason)


def test_a_bytes_decision_id_is_refused_naming_the_field():
    with pytest.raises(LooperError, match=r"decision_id: expected a string, got a bytes$"):
        check_decision_id(b"0190a0b0-0000-7000-8000-000000000001")


def _sdk_payload(blueprint, decision_id: str, name: str = "click") -> bytes:
    """The observation event the SDK would send, built with no size limit."""
    unlimited = compile_blueprint(blueprint, event_rules.EventLimits(max_event_bytes=10**9))
    [payload] = observation_payloads(unlimited, decision_id, {name: 1}, NOW)
    return payload


@pytest.mark.parametrize(("decision_id", "name"), [("d" * 70_000, "click"), ("d1", "c" * 70_000)])
def test_an_oversize_observation_is_refused_with_ingestions_reason(blueprint, decision_id, name):
    payload = _sdk_payload(blueprint, decision_id, name)
    batch = parse_entries([(STREAM, f"{NOW}-0", payload)], {"t_notify": blueprint})
    [row] = batch.quarantine.rows
    assert row[3].startswith("payload: ") and "exceeds max_event_bytes (65536)" in row[3]
    check_decision_id(decision_id)  # a string: its size is the event's
    with pytest.raises(LooperError) as refused:
        observation_payloads(compile_blueprint(blueprint), decision_id, {name: 1}, NOW)
    rule = row[3].split("; ")[0]  # then: "payload kept up to its first 65536 characters"
    assert str(refused.value).endswith(f": {rule}")
    assert len(str(refused.value)) < 300  # the id is shown cut, not 70,000 characters


def test_an_observation_of_exactly_max_event_bytes_is_sent_and_kept(blueprint):
    limits = event_rules.EventLimits(max_event_bytes=1_000)
    fixed = len(_sdk_payload(blueprint, ""))
    decision_id = "d" * (1_000 - fixed)
    [payload] = observation_payloads(compile_blueprint(blueprint, limits), decision_id, {"click": 1}, NOW)
    assert len(payload) == 1_000
    batch = parse_entries([(STREAM, f"{NOW}-0", payload)], {"t_notify": blueprint}, limits)
    assert len(batch.observations.rows) == 1 and batch.quarantine.rows == []
    with pytest.raises(LooperError, match=r"payload: 1001 bytes exceeds max_event_bytes \(1000\)"):
        observation_payloads(compile_blueprint(blueprint, limits), decision_id + "d", {"click": 1}, NOW)


def test_lower_configured_limits_are_the_sdks_and_ingestions(blueprint):
    limits = event_rules.EventLimits(max_event_bytes=1_500, ts_max_past_days=1, ts_max_future_s=60)
    compiled = compile_blueprint(blueprint, limits)
    long_country = {**FEATURES, "country": "x" * 1_200}
    check_requests(compile_blueprint(blueprint), [("u1", long_country)])  # the defaults allow it
    with pytest.raises(LooperError, match=r"exceeds max_event_bytes \(1500\)"):
        check_requests(compiled, [("u1", long_country)])
    event = _decision(blueprint, "u1", long_country)
    batch = parse_entries([(STREAM, f"{NOW}-0", json.dumps(event).encode())], {"t_notify": blueprint}, limits)
    assert batch.quarantine.rows[0][3].startswith("payload: ")
    two_days_ago = NOW - 2 * DAY
    events.to_epoch_ms(two_days_ago)  # the defaults allow it
    with pytest.raises(LooperError, match="more than 1 days before"):
        events.to_epoch_ms(two_days_ago, limits)
    with pytest.raises(LooperError, match="more than 60 s after"):
        events.to_epoch_ms(NOW + 3_600_000, limits)
