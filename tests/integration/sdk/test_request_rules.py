"""The SDK refuses at call time, before anything is sent, what ingestion would quarantine (real redis-server)."""

from __future__ import annotations

import math

import pytest

from looper_common.contracts import events
from looper_common.sdk.client import LooperClient, LooperError
from tests.conftest import FEATURES, make_blueprint

pytestmark = pytest.mark.integration
STREAM = events.stream_key("t_notify")


@pytest.fixture
def client(redis_url, redis_client):
    blueprint = make_blueprint()
    return LooperClient(redis_url, blueprints={blueprint.name: blueprint})


@pytest.mark.parametrize(
    ("unit_id", "features", "ts", "message"),
    [
        ("u1", {**FEATURES, "recency": math.nan}, None, "features: recency is not a finite number"),
        ("u1", {**FEATURES, "country": "\ud800"}, None, "features: country is not valid Unicode"),
        ("\udfff", FEATURES, None, "unit_id: not valid Unicode"),
        (b"raw", FEATURES, None, "unit_id: expected a string, got a bytes"),
        (7, FEATURES, None, "unit_id: expected a string, got the number 7"),
        ("u1", FEATURES, 1e20, "ts: 100000000000000000000 is outside years 1-9999"),
        ("u1", FEATURES, math.inf, "ts: inf is not a finite number"),
        ("u1", {**FEATURES, "country": "x" * 70_000}, None, "exceeds max_event_bytes"),
    ],
)
def test_get_decision_refuses_and_sends_nothing(client, redis_client, unit_id, features, ts, message):
    with pytest.raises(LooperError, match=message):
        client.get_decision("t_notify", unit_id, features, ts=ts)
    assert redis_client.exists(STREAM) == 0


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_log_observations_refuses_a_non_finite_value(client, redis_client, value):
    decision = client.get_decision("t_notify", "u1", FEATURES)
    with pytest.raises(LooperError, match="observation 'click': value: .* is not a finite number"):
        client.log_observations(decision.decision_id, {"click": value})
    assert redis_client.xlen(STREAM) == 1  # the decision only
