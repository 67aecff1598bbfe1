"""Each endpoint end to end against a real redis-server: the same events as the SDK's."""

from __future__ import annotations

import json
import socket

import pytest
from fastapi.testclient import TestClient

from looper_common.contracts import policy_store
from looper_common.sdk import LooperClient, replay_matches
from looper_common.serve.app import create_app
from looper_common.serve.schemas import MAX_BATCH
from looper_common.serve.tokens import parse_tokens
from tests.conftest import FEATURES, make_blueprint
from tests.integration.serve.conftest import ALL, blueprints, stream

pytestmark = pytest.mark.integration

TS = 1_767_225_600_000


def _publish(redis_client, version: str = "v1") -> None:
    redis_client.set(policy_store.active_key("t_notify"), version)
    redis_client.set(policy_store.entry_key("t_notify", version, "u1"),
                     policy_store.encode_entry("send", {"send": 0.8, "skip": 0.2}))


def test_decision_event_has_the_sdks_shape_and_replays(http, sdk, redis_client):
    _publish(redis_client)
    response = http.post("/v1/decisions", headers=ALL,
                         json={"blueprint": "t_notify", "unit_id": "u1", "features": FEATURES, "ts": TS})
    assert response.status_code == 200, response.text
    served = response.json()
    assert served["policy_version"] == "v1" and served["is_default"] is False
    assert served["scores"] == {"send": 0.8, "skip": 0.2} and served["ts"] == TS
    assert served["propensity"] == served["action_probs"][served["action"]]
    direct = sdk.get_decision("t_notify", "u1", FEATURES, ts=TS)
    via_http, via_sdk = stream(redis_client)
    assert list(via_http) == list(via_sdk)  # same fields, same order
    for key in via_http:
        if key not in ("event_id", "decision_id", "action", "propensity"):
            assert via_http[key] == via_sdk[key], key
    assert via_http["decision_id"] == served["decision_id"] and via_http["features"] == FEATURES
    assert via_http["action"] == served["action"] and replay_matches(via_http)
    assert direct.action_probs == served["action_probs"]


def test_unknown_unit_gets_the_default(http, redis_client):
    _publish(redis_client)
    served = http.post("/v1/decisions", headers=ALL,
                       json={"blueprint": "t_notify", "unit_id": "nobody", "features": FEATURES}).json()
    assert served["is_default"] is True and served["policy_version"] is None
    [event] = stream(redis_client)
    assert event["is_default"] is True and replay_matches(event)


def test_batch_decides_in_order_with_per_item_ts(http, redis_client):
    _publish(redis_client)
    body = {"blueprint": "t_notify", "requests": [
        {"unit_id": "u1", "features": FEATURES, "ts": TS},
        {"unit_id": "u2", "features": {**FEATURES, "visits": 9}, "ts": TS + 5},
        {"unit_id": "u3", "features": FEATURES},
    ]}
    response = http.post("/v1/decisions:batch", headers=ALL, json=body)
    assert response.status_code == 200, response.text
    decisions = response.json()["decisions"]
    assert [d["unit_id"] for d in decisions] == ["u1", "u2", "u3"]
    assert [d["is_default"] for d in decisions] == [False, True, True]
    logged = stream(redis_client)
    assert [e["decision_id"] for e in logged] == [d["decision_id"] for d in decisions]
    assert [e["ts"] for e in logged[:2]] == [TS, TS + 5] and logged[2]["ts"] > TS
    assert logged[1]["features"]["visits"] == 9 and all(replay_matches(e) for e in logged)
    assert http.post("/v1/decisions:batch", headers=ALL,
                     json={"blueprint": "t_notify", "requests": []}).json() == {"decisions": []}


def test_observations_land_with_the_sdks_event_ids(http, sdk, redis_client):
    served = http.post("/v1/decisions", headers=ALL,
                       json={"blueprint": "t_notify", "unit_id": "u1", "features": FEATURES}).json()
    body = {"decision_id": served["decision_id"], "observations": {"click": True, "purchase": 12.5}, "ts": TS}
    response = http.post("/v1/observations", headers=ALL, json=body)
    assert response.status_code == 202 and response.json() == {"accepted": 2}
    via_http = stream(redis_client)[1:]
    redis_client.delete(*redis_client.keys("looper:events:*"))
    sdk.log_observations(served["decision_id"], {"click": True, "purchase": 12.5}, ts=TS)
    assert via_http == stream(redis_client)  # the same events, ids included (they derive from the content)
    assert [(e["name"], e["value"]) for e in via_http] == [("click", 1.0), ("purchase", 12.5)]


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"blueprint": "t_notify", "unit_id": "u1", "features": {k: v for k, v in FEATURES.items() if k != "visits"}},
         ["body", "features"], "missing feature(s) ['visits']"),
        ({"blueprint": "t_notify", "unit_id": "u1", "features": {**FEATURES, "visits": 2.5}},
         ["body", "features"], "feature 'visits' must be int"),
        ({"blueprint": "t_notify", "unit_id": "u1", "features": {**FEATURES, "extra": 1}},
         ["body", "features"], "unknown feature(s) ['extra']"),
        ({"blueprint": "nope", "unit_id": "u1", "features": FEATURES}, ["body", "blueprint"], "unknown blueprint"),
        ({"blueprint": "t_notify", "unit_id": 7, "features": FEATURES}, ["body", "unit_id"], "valid string"),
        ({"blueprint": "t_notify", "unit_id": "\ud800", "features": FEATURES}, ["body", "unit_id"], "surrogates"),
        ({"blueprint": "t_notify", "unit_id": "u1", "features": {**FEATURES, "visits": None}},
         ["body", "features", "visits"], ""),
        ({"blueprint": "t_notify", "unit_id": "u1", "features": FEATURES, "ts": -1}, ["body", "ts"], "greater"),
        ({"blueprint": "t_notify", "unit_id": "u1", "features": FEATURES, "color": "red"}, ["body", "color"], "Extra"),
    ],
)
def test_bad_decisions_are_422_naming_the_field(http, redis_client, body, loc, words):
    raw = json.dumps(body).encode()  # ASCII JSON: a lone surrogate goes as its \\ud800 escape
    response = http.post("/v1/decisions", headers={**ALL, "Content-Type": "application/json"}, content=raw)
    assert response.status_code == 422, response.text
    [error, *_] = response.json()["detail"]
    assert error["loc"][:len(loc)] == loc and words in error["msg"]
    assert stream(redis_client) == []  # nothing logged


def test_bad_batches_and_observations_are_422(http, redis_client):
    too_many = {"blueprint": "t_notify", "requests": [{"unit_id": "u", "features": FEATURES}] * (MAX_BATCH + 1)}
    assert http.post("/v1/decisions:batch", headers=ALL, json=too_many).json()["detail"][0]["loc"] == [
        "body", "requests"]
    one_bad = {"blueprint": "t_notify", "requests": [{"unit_id": "a", "features": FEATURES},
                                                     {"unit_id": "b", "features": {}}]}
    error = http.post("/v1/decisions:batch", headers=ALL, json=one_bad).json()["detail"][0]
    assert error["loc"] == ["body", "requests"] and "unit 'b'" in error["msg"]
    unknown_id = {"decision_id": "not-a-decision", "observations": {"click": 1}}
    error = http.post("/v1/observations", headers=ALL, json=unknown_id).json()["detail"][0]
    assert error["loc"] == ["body", "decision_id"]
    text_value = {"decision_id": "x", "blueprint": "t_notify", "observations": {"click": "yes"}}
    error = http.post("/v1/observations", headers=ALL, json=text_value).json()["detail"][0]
    assert error["loc"][:3] == ["body", "observations", "click"]
    assert stream(redis_client) == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_readyz_is_503_when_redis_is_down_and_decisions_fall_back():
    blueprint = make_blueprint()
    sdk = LooperClient(f"redis://127.0.0.1:{_closed_port()}/0", blueprints=blueprints(), socket_timeout=0.2)
    with TestClient(create_app(sdk, blueprints(), parse_tokens("t"))) as http:
        assert http.get("/healthz").json()["status"] == "ok"
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "redis unavailable"
        served = http.post("/v1/decisions", headers={"Authorization": "Bearer t"},
                           json={"blueprint": blueprint.name, "unit_id": "u1", "features": FEATURES})
        assert served.status_code == 200 and served.json()["is_default"] is True
        assert served.json()["action"] in blueprint.decision.actions


def test_an_integral_json_number_is_an_int_feature(http, redis_client):
    body = {"blueprint": "t_notify", "unit_id": "u1", "features": {**FEATURES, "visits": 3.0}, "ts": float(TS)}
    response = http.post("/v1/decisions", headers=ALL, json=body)
    assert response.status_code == 200, response.text
    [event] = stream(redis_client)
    assert event["features"]["visits"] == 3 and isinstance(event["features"]["visits"], int)
    assert event["features"]["recency"] == 2.5 and event["ts"] == TS
