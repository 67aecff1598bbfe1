"""The Python event parser gives exactly the rows and reasons the Spark parser gave.

Known differences, both on purpose or out of reach: a JSON object without ``kind``
is quarantined ("kind: null ...") where the Spark parser dropped it silently (it
matched neither kind and got no reason); and a double's text follows JDK 17's
``Double.toString`` except its general algorithm's rare longer-than-shortest digits
(e.g. ``4.9E-324``), which only the integral case below 2^63 reproduces.
"""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from looper_common.contracts import events
from looper_common.ingest.parsing import parse_entries
from looper_common.lake.arrow_rows import rows_to_arrow
from looper_common.lake.tables import DECISIONS_SCHEMA, OBSERVATIONS_SCHEMA, QUARANTINE_SCHEMA
from tests.conftest import FEATURES, make_blueprint
from tests.integration.ingest import spark_event_parsing as reference

pytestmark = pytest.mark.integration
STREAM = events.stream_key("t_notify")
TS = 1_767_225_600_000  # 2026-01-01

DECISION = {
    "kind": "decision", "event_id": "d", "decision_id": "d", "blueprint": "t_notify",
    "blueprint_version": "v1", "unit_id": "u", "ts": TS, "features": FEATURES, "action": "send",
    "propensity": 0.95, "action_probs": {"send": 0.95, "skip": 0.05}, "scores": {"send": 0.7},
    "policy_version": "p1", "is_default": False,
}
OBSERVATION = {
    "kind": "observation", "event_id": "o", "decision_id": "d", "blueprint": "t_notify",
    "name": "click", "value": 1, "ts": TS,
}
# JSON values each field is tried with: every type, and the texts the casts treat specially
VALUES = [
    None, True, False, 0, -0, 1, -1, 7, 2**63, -(2**63) - 1, 12345678901234567890123, 0.5, 1.0, -0.0, 1e-05,
    1e7, 1.5e16, 123456789.125, 0.30000000000000004, 2.0**62 + 2**10, 1e300,
    "", "x", "send", "skip", "decision", "observation",
    "t_notify", "t_other", "0.5", " 0.5 ", "1", "0", "-1", "+5", " 12 ", "\t12\n", "1.", "1.5", "1e3", "0x10",
    "NaN", "nan", "-nan", "Infinity", "-inf", "INF", "1d", "0.5f", ".5", "5.", "0x1p-1", "1_0", "٣",
    "true", "TRUE", "t", "yes", "Y", "no", "off", " true ", "\u00a0true", "\x00true", "\x7ftrue", "\x0012", "\x7f12",
    "\x85true", "\x1f0.5",
    [], [1, "a"], {}, {"a": 1}, {"send": 1, "skip": 0}, {"send": "0.5", "skip": None}, {"x": [1.25, {"y": None}]},
    {"recency": 1, "visits": 2, "opted_in": 3}, {"é": "ü\n\"", "k": 1e22},
]
RAW = [
    None, "", "{not json", "[1, 2]", '"str"', "null", "{}", '{"a": 1}', " {} ", '{"kind": "decision"} trailing',
    '{"kind": "observation", "a": NaN}', '{"kind": "x", "ts": Infinity}', '{"kind": "decision",}',
    '{"kind": "decision", "kind": "observation", "event_id": "dup-keys"}', '[{"kind": "decision"}]',
    '{"Kind": "decision", "event_id": "case"}', '{"kind": "observation", "value": 1e400, "event_id": "big"}',
]


def _entries() -> list[tuple[str, str, str | None]]:
    payloads = [*RAW, json.dumps(DECISION), json.dumps(OBSERVATION)]
    for base in (DECISION, OBSERVATION):
        for key in [*base, "name", "value", "propensity", "action_probs"]:
            payloads.append(json.dumps({k: v for k, v in base.items() if k != key}))
            for value in VALUES:
                payloads.append(json.dumps({**base, key: value}))
    rng = random.Random(3)
    for _ in range(400):  # feature values of every magnitude: their text is stored
        x = rng.choice([rng.random(), round(rng.random() * 100, 2), rng.uniform(-1e9, 1e9), 10 ** rng.uniform(-12, 25),
                        rng.getrandbits(64) * 1.0, float(rng.randrange(10**7))])
        payloads.append(json.dumps({**DECISION, "features": {**FEATURES, "recency": x}}))
    entries = []
    for i, payload in enumerate(payloads):  # a distinct event_id each, so deduplication picks nothing
        try:
            doc = json.loads(payload) if payload else None
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("event_id"), str):
            payload = json.dumps({**doc, "event_id": f"{doc['event_id']}-{i}"})
        entries.append((STREAM, f"{TS + i}-0", payload or None))  # the reader gives None for empty
    entries.append((events.stream_key("ghost"), f"{TS}-5", json.dumps({**OBSERVATION, "event_id": "g"})))
    return entries


def _rows(df) -> list[str]:
    return sorted(json.dumps(r.asDict(recursive=True), default=repr, sort_keys=True) for r in df.collect())


@pytest.fixture(scope="module")
def blueprints():
    return {"t_notify": make_blueprint(), "t_other": make_blueprint(name="t_other")}


def test_python_parser_matches_spark_parser(spark, blueprints):
    entries = _entries()
    raw = spark.createDataFrame(pd.DataFrame(entries, columns=reference.RAW_SCHEMA.fieldNames()), reference.RAW_SCHEMA)
    parsed = reference.parse_events(raw, blueprints).cache()
    batch = parse_entries(entries, blueprints)
    differences = []
    for name, old, new, schema in (
        ("decisions", reference.valid_decisions(parsed), batch.decisions, DECISIONS_SCHEMA),
        ("observations", reference.valid_observations(parsed), batch.observations, OBSERVATIONS_SCHEMA),
        ("quarantine", reference.rejected_events(parsed), batch.quarantine, QUARANTINE_SCHEMA),
    ):
        old_rows = set(_rows(old))
        new_rows = set(_rows(spark.createDataFrame(rows_to_arrow(new.rows, schema), schema)))
        differences += [(name, "spark only", r) for r in sorted(old_rows - new_rows)]
        differences += [(name, "python only", r) for r in sorted(new_rows - old_rows)]
    for d in differences:
        print(*d)
    assert len(entries) > 1000
    no_kind = [d for d in differences if '"reason": "kind: null is not decision or observation"' in d[2]]
    assert {d[:2] for d in no_kind} == {("quarantine", "python only")}
    # {}, {"a": 1}, " {} ", "Kind", and a decision and an observation without kind or with a null one
    assert len(no_kind) == 8
    assert [d for d in differences if d not in no_kind] == []
