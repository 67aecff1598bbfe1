"""Payloads meant to break ingestion: each is quarantined with its own reason, and the batch goes on."""

from __future__ import annotations

import json

import pytest

from looper_common.contracts import event_rules
from looper_common.ingest.arrow_batch import to_tables
from looper_common.ingest.parsing import parse_entries
from tests.conftest import FEATURES, make_blueprint
from tests.unit.ingest.test_parsing import DECISION, OBSERVATION, STREAM, TS

ARRIVED = f"{TS + 5_000}-0"
DAY = event_rules.DAY_MS
DEEP = "[" * 1_000 + "]" * 1_000
OVERSIZE = json.dumps({**DECISION, "unit_id": "x" * 70_000})


@pytest.fixture(scope="module")
def blueprints():
    return {"t_notify": make_blueprint()}


HOSTILE = {
    "lone surrogate in unit_id": (
        json.dumps({**DECISION, "unit_id": "\ud800"}), "unit_id: not valid Unicode (a lone surrogate)"),
    "lone surrogate in a category": (
        json.dumps({**DECISION, "features": {**FEATURES, "country": "\udfff"}}),
        "features: country is not valid Unicode (a lone surrogate)"),
    "lone surrogate in a feature name": (
        json.dumps({**DECISION, "features": {**FEATURES, "\ud800": 1}}),
        "features: name '\\ud800' is not valid Unicode (a lone surrogate)"),
    "lone surrogate in an extra field": (
        json.dumps({**DECISION, "extra": {"k": ["\udc00"]}}),
        "payload: a value is not valid Unicode (a lone surrogate)"),
    "UTF-8 of a surrogate": (b'{"kind": "decision", "unit_id": "\xed\xa0\x80"}',
                             "malformed JSON: not UTF-8 (invalid continuation byte)"),
    "invalid UTF-8": (b'{"kind": "decision", "unit_id": "\xff"}', "malformed JSON: not UTF-8 (invalid start byte)"),
    "1,000 levels in a feature": (
        json.dumps({**DECISION, "features": {**FEATURES, "deep": 0}}).replace('"deep": 0', f'"deep": {DEEP}'),
        "payload: nested too deeply to decode"),
    "1,000 levels": (DEEP, "payload: nested too deeply to decode"),
    "100,000 levels": ("[" * 100_000 + "]" * 100_000,
                       "payload: 200000 bytes exceeds max_event_bytes (65536); "
                       "payload kept up to its first 65536 characters"),
    "NaN value": (json.dumps({**OBSERVATION, "value": float("nan")}), "value: nan is not a finite number"),
    "-Infinity value": (json.dumps({**OBSERVATION, "value": float("-inf")}), "value: -inf is not a finite number"),
    "Infinity feature": (json.dumps({**DECISION, "features": {**FEATURES, "recency": float("inf")}}),
                         "features: recency is not a finite number (inf)"),
    "NaN propensity": (json.dumps({**DECISION, "propensity": float("nan")}), "propensity: nan is not a finite number"),
    "NaN score": (json.dumps({**DECISION, "scores": {"send": float("nan"), "skip": 0.1}}),
                  "scores: non-finite score for send"),
    "ts 1e20 as a float": (json.dumps({**DECISION, "ts": 1e20}),
                           "ts: expected integer epoch milliseconds, got the number 1e+20"),
    "ts 1e20": (json.dumps({**DECISION, "ts": 10**20}), "ts: 100000000000000000000 is outside years 1-9999"),
    "year 10000": (json.dumps({**DECISION, "ts": 253_402_300_800_000}), "ts: 253402300800000 is outside years 1-9999"),
    "year -283229": (json.dumps({**OBSERVATION, "ts": -9_000_000_000_000_000}),
                     "ts: -9000000000000000 is outside years 1-9999"),
    "11 years before arrival": (json.dumps({**DECISION, "ts": TS - 4_015 * DAY}),
                                f"ts: {TS - 4_015 * DAY} is more than 3650 days before its arrival ({TS + 5_000})"),
    "2 days after arrival": (json.dumps({**DECISION, "ts": TS + 2 * DAY}),
                             f"ts: {TS + 2 * DAY} is more than 86400 s after its arrival ({TS + 5_000})"),
    "integer unit id": (json.dumps({**DECISION, "unit_id": 42}), "unit_id: expected a string, got the number 42"),
    "oversize": (OVERSIZE, f"payload: {len(OVERSIZE)} bytes exceeds max_event_bytes (65536); "
                           "payload kept up to its first 65536 characters"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_payload_is_quarantined_with_its_reason_beside_a_good_event(blueprints, case):
    payload, reason = HOSTILE[case]
    good = json.dumps({**OBSERVATION, "event_id": "good"})
    batch = parse_entries([(STREAM, ARRIVED, payload), (STREAM, f"{TS + 5_000}-1", good)], blueprints)
    assert [row[0] for row in batch.observations.rows] == ["good"]
    assert batch.decisions.rows == []
    [row] = batch.quarantine.rows
    assert row[3] == reason
    assert row[6] == TS // DAY  # the arrival's date
    tables = to_tables(batch)  # every row Arrow can hold
    assert tables["quarantine/events"].num_rows == 1


def test_the_size_limit_is_a_setting(blueprints):
    payload = json.dumps(DECISION)
    small = event_rules.EventLimits(max_event_bytes=100)
    [row] = parse_entries([(STREAM, ARRIVED, payload)], blueprints, small).quarantine.rows
    assert row[3].startswith(f"payload: {len(payload)} bytes exceeds max_event_bytes (100)")
    assert len(row[4]) == 100


def test_a_lone_surrogate_in_the_event_id_is_kept_under_the_entrys_key(blueprints):
    payload = json.dumps({**DECISION, "event_id": "\ud800"})
    [row] = parse_entries([(STREAM, ARRIVED, payload)], blueprints).quarantine.rows
    assert row[:4] == (f"stream:{STREAM}:{ARRIVED}", "t_notify", "decision",
                       "event_id: not valid Unicode (a lone surrogate)")


def test_an_unexpected_error_quarantines_the_entry_with_its_class_and_message(blueprints):
    batch = parse_entries([(STREAM, "not-an-id", json.dumps(DECISION)), (STREAM, ARRIVED, json.dumps(OBSERVATION))],
                          blueprints)
    assert len(batch.observations.rows) == 1
    [row] = batch.quarantine.rows
    assert row[0] == f"stream:{STREAM}:not-an-id"
    assert row[3] == "ValueError: invalid literal for int() with base 10: 'not'"


def test_a_row_arrow_refuses_moves_to_the_quarantine(blueprints):
    batch = parse_entries([(STREAM, ARRIVED, json.dumps(DECISION)), (STREAM, ARRIVED, json.dumps(OBSERVATION))],
                          blueprints)
    row = batch.decisions.rows[0]
    batch.decisions.rows[0] = (*row[:4], "\ud800", *row[5:])  # as if a check had missed it
    tables = to_tables(batch)
    assert "bronze/decisions" not in tables and tables["bronze/observations"].num_rows == 1
    [quarantined] = tables["quarantine/events"].to_pylist()
    assert quarantined["event_id"] == f"stream:{STREAM}:{ARRIVED}"
    assert quarantined["reason"].startswith("UnicodeEncodeError: ")
