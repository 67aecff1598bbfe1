"""Feature values stored as text: one form per JSON type, read back by training as the values the SDK sent."""

from __future__ import annotations

import random
import sys

import pytest

from looper_common.contracts import events, ids
from looper_common.ingest.json_values import feature_texts
from looper_common.ingest.parsing import parse_entries
from looper_common.lake.arrow_rows import rows_to_arrow
from looper_common.lake.tables import DECISIONS_SCHEMA
from looper_common.sdk.decision_batch import ServingPlan, encode_decision_event
from looper_common.training.examples import typed_features
from tests.conftest import make_blueprint

TS = 1_767_225_600_000
FLOATS = [
    0.1, 2.5, -0.0, 0.0, 1e-05, 0.00012, 1e7, 1e16, 1.5e16, 1e22, 123456789.125, 0.30000000000000004,
    2.0**62 + 2**10, 5e-324, sys.float_info.max, -sys.float_info.max, 1 / 3, 7, 0, -12,
]


def test_each_json_type_has_one_text():
    assert feature_texts({
        "s": "us", "digits": "1e5", "t": True, "f": False, "i": -3, "big": 10**30, "x": 0.1, "tiny": 1e-05,
        "whole": 3.0, "n": None, "list": [1, 0.5, "a", None], "obj": {"k": {"é": True}},
    }) == {
        "s": "us", "digits": "1e5", "t": "true", "f": "false", "i": "-3", "big": str(10**30), "x": "0.1",
        "tiny": "1e-05", "whole": "3.0", "n": None, "list": '[1,0.5,"a",null]', "obj": '{"k":{"é":true}}',
    }


def _requests(n: int) -> list[tuple[str, dict[str, object]]]:
    rng = random.Random(5)
    recency = FLOATS + [
        rng.choice([rng.random(), rng.uniform(-1e9, 1e9), 10 ** rng.uniform(-12, 300), rng.getrandbits(64) * 1.0])
        for _ in range(n - len(FLOATS))
    ]
    return [
        (
            f"u{i}",
            {
                "recency": r,
                "visits": rng.choice([0, -1, 3, 2**62, rng.randrange(-(2**63), 2**63)]),
                "opted_in": rng.random() < 0.5,
                "country": rng.choice(["us", "", "é ü", "true", "1e5", "null", '{"a": 1}']),
            },
        )
        for i, r in enumerate(recency)
    ]


@pytest.fixture(scope="module")
def sent():
    """Decision events for the same requests from both SDK encoders: the batch path's and the reference."""
    bp = make_blueprint()
    requests = _requests(400)
    plan = ServingPlan(bp, None, bp.policy.exploration, ids.blueprint_tag(bp.name))
    decisions, batch_payloads = plan.decide(requests, [TS] * len(requests), [None] * len(requests))
    reference = [encode_decision_event(bp, d, f) for d, (_, f) in zip(decisions, requests, strict=True)]
    return bp, requests, batch_payloads, reference


def _bronze(bp, payloads):
    entries = [(events.stream_key(bp.name), f"{TS}-{i}", p) for i, p in enumerate(payloads)]
    batch = parse_entries(entries, {bp.name: bp})
    assert batch.quarantine.rows == []
    return batch.decisions.rows


def test_both_sdk_encoders_give_the_same_bronze_rows(sent):
    bp, requests, batch_payloads, reference = sent
    assert batch_payloads != reference  # the encoders spell some floats differently
    rows = _bronze(bp, batch_payloads)
    assert len(rows) == len(requests)
    assert rows == _bronze(bp, reference)


def test_training_reads_back_the_features_the_sdk_sent(sent):
    bp, requests, batch_payloads, _ = sent
    table = rows_to_arrow(_bronze(bp, batch_payloads), DECISIONS_SCHEMA)
    columns = typed_features(table["features"], bp)
    for name in ("recency", "visits", "opted_in", "country"):
        got = columns[name].to_pylist()
        expected = [features[name] for _, features in requests]
        if name == "recency":  # repr tells -0.0 from 0.0 and any two doubles apart
            got, expected = [repr(v) for v in got], [repr(float(v)) for v in expected]
        assert got == expected, name
