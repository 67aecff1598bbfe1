"""The SDK against a real redis-server: defaults, published policies, validation, failures."""

from __future__ import annotations

import json

import pytest
import redis

from looper_common.contracts import events, policy_store
from looper_common.sdk.client import LooperClient, LooperError
from tests.conftest import FEATURES, free_port, make_blueprint

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str, redis_client: redis.Redis) -> LooperClient:
    blueprint = make_blueprint()
    return LooperClient(redis_url, blueprints={blueprint.name: blueprint}, pointer_ttl_s=0.0)


def _stream(redis_client: redis.Redis, blueprint: str = "t_notify") -> list[dict]:
    return [json.loads(f[b"e"]) for _, f in redis_client.xrange(events.stream_key(blueprint))]


def test_default_until_a_policy_is_published(client, redis_client):
    decision = client.get_decision("t_notify", "u1", FEATURES, ts=1_767_225_600_000)
    assert decision.is_default and decision.policy_version is None
    assert decision.action_probs == pytest.approx({"send": 0.05, "skip": 0.95})
    assert decision.propensity == decision.action_probs[decision.action]
    [event] = _stream(redis_client)
    assert event["kind"] == "decision" and event["decision_id"] == decision.decision_id
    assert event["features"] == FEATURES and event["ts"] == 1_767_225_600_000
    assert event["blueprint_version"] == make_blueprint().version
    assert event["is_default"] is True and event["propensity"] == decision.propensity


def test_published_entry_is_served(client, redis_client):
    redis_client.set(policy_store.active_key("t_notify"), "v1")
    redis_client.set(
        policy_store.entry_key("t_notify", "v1", "u1"),
        policy_store.encode_entry("send", {"send": 0.8, "skip": 0.2}),
    )
    served = client.get_decisions("t_notify", [("u1", FEATURES), ("u2", FEATURES)])
    assert served[0].policy_version == "v1" and not served[0].is_default
    assert served[0].scores == {"send": 0.8, "skip": 0.2}
    assert served[0].action_probs == pytest.approx({"send": 0.95, "skip": 0.05})
    assert served[1].is_default  # unknown unit: the default action
    assert [e["policy_version"] for e in _stream(redis_client)] == ["v1", None]


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({k: v for k, v in FEATURES.items() if k != "visits"}, r"missing feature\(s\) \['visits'\]"),
        ({**FEATURES, "visits": "3"}, "feature 'visits' must be int, got '3'"),
        ({**FEATURES, "recency": True}, "feature 'recency' must be float, got True"),
        ({**FEATURES, "colour": "red"}, r"unknown feature\(s\) \['colour'\]"),
    ],
)
def test_bad_features_are_rejected_and_nothing_is_logged(client, redis_client, features, message):
    with pytest.raises(LooperError, match=message):
        client.get_decision("t_notify", "u1", features)
    assert _stream(redis_client) == []


def test_a_checked_feature_map_does_not_let_a_wrong_one_through(client, redis_client):
    client.get_decisions("t_notify", [("u1", FEATURES), ("u2", {**FEATURES, "recency": 3})])  # int is a float
    bad = [("u3", FEATURES), ("u4", {**FEATURES, "visits": 2.0})]
    with pytest.raises(LooperError, match="feature 'visits' must be int, got 2.0"):
        client.get_decisions("t_notify", bad)
    reordered = dict(reversed(FEATURES.items()))
    assert client.get_decision("t_notify", "u5", reordered).unit_id == "u5"
    assert [e["unit_id"] for e in _stream(redis_client)] == ["u1", "u2", "u5"]


def test_unknown_blueprint(client):
    with pytest.raises(LooperError, match="unknown blueprint 'nope' \\(known: t_notify\\)"):
        client.get_decision("nope", "u1", FEATURES)


def test_observations_find_their_blueprint_from_the_decision_id(client, redis_client):
    decision = client.get_decision("t_notify", "u1", FEATURES)
    later = decision.ts + 5
    client.log_observations(decision.decision_id, {"click": True, "purchase": 12.5}, ts=later)
    observations = [e for e in _stream(redis_client) if e["kind"] == "observation"]
    assert {(o["name"], o["value"], o["ts"]) for o in observations} == {
        ("click", 1.0, later), ("purchase", 12.5, later)}
    assert all(o["blueprint"] == "t_notify" and o["decision_id"] == decision.decision_id for o in observations)
    with pytest.raises(LooperError, match="must be a number or bool"):
        client.log_observations(decision.decision_id, {"click": "yes"})
    with pytest.raises(LooperError, match="not issued for any blueprint"):
        client.log_observations("00000000-0000-7000-8000-000000000000", {"click": 1})


def test_redis_down_serves_default_and_keeps_events(redis_process):
    blueprint = make_blueprint()
    port = free_port()
    down = LooperClient(f"redis://127.0.0.1:{port}/0", blueprints={blueprint.name: blueprint}, socket_timeout=0.05)
    decision = down.get_decision("t_notify", "u1", FEATURES)
    assert decision.is_default and decision.action in ("send", "skip")
    assert decision.default_reason == "circuit_open"  # the connect check already failed
    assert down.stats()["events_buffered"] == 1
    redis_process(port=port)  # Redis is back
    assert down.flush() == 0
    assert [e["decision_id"] for e in _stream(redis.Redis(port=port))] == [decision.decision_id]


def test_a_refused_write_keeps_every_event_for_the_retry(redis_url, redis_client):
    redis_client.set(events.stream_key("t_other"), "not a stream")  # XADD to it: WRONGTYPE
    both = LooperClient(redis_url, blueprints={"t_notify": make_blueprint(), "t_other": make_blueprint(name="t_other")})
    both.get_decisions("t_other", [("u1", FEATURES), ("u2", FEATURES)])
    assert both.stats()["events_buffered"] == 2 and both.dropped_events == 0
    decision = both.get_decision("t_notify", "u3", FEATURES)  # sent, the other stream's events still kept
    assert [e["decision_id"] for e in _stream(redis_client)] == [decision.decision_id]
    assert both.stats()["events_buffered"] == 2
    assert both.stats()["circuit"] == "closed"  # one bad key is no outage
    redis_client.delete(events.stream_key("t_other"))
    assert both.flush() == 0
    assert [e["unit_id"] for e in _stream(redis_client, "t_other")] == ["u1", "u2"]
    assert [e["decision_id"] for e in _stream(redis_client)] == [decision.decision_id]  # nothing sent twice
