"""Bearer tokens: 401 before anything else runs, 403 outside a token's scope."""

from __future__ import annotations

import pytest

from tests.conftest import FEATURES
from tests.integration.serve.conftest import ALL, NOTIFY_ONLY, stream

pytestmark = pytest.mark.integration

ENDPOINTS = ["/v1/decisions", "/v1/decisions:batch", "/v1/observations"]


def _commands(redis_client) -> int:
    """Commands Redis has run, not counting the INFO calls that read the figure."""
    stats = redis_client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic all-tok"}, {"Authorization": "Bearer "},
     {"Authorization": "all-tok"}],
)
def test_401_before_body_parsing_or_redis(http, redis_client, path, headers):
    before = _commands(redis_client)
    response = http.post(path, content=b"{not json", headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 401, response.text  # not 422: the body was never read
    assert response.json() == {"detail": "missing or invalid bearer token"}
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert _commands(redis_client) == before
    assert stream(redis_client) == []


def test_unknown_paths_need_a_token_too(http):
    assert http.get("/v1/nothing").status_code == 401
    assert http.get("/docs").status_code == 401
    assert http.get("/v1/nothing", headers=ALL).status_code == 404


def test_websockets_are_closed_before_the_app(http):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as closed, http.websocket_connect("/v1/decisions", headers=ALL):
        pass
    assert closed.value.code == 1008


def test_open_paths_need_no_token(http):
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 200
    assert http.get("/openapi.json").json()["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_scoped_token_only_reaches_its_blueprint(http, redis_client):
    body = {"unit_id": "u1", "features": FEATURES}
    assert http.post("/v1/decisions", json={"blueprint": "t_notify", **body}, headers=NOTIFY_ONLY).status_code == 200
    refused = http.post("/v1/decisions", json={"blueprint": "t_other", **body}, headers=NOTIFY_ONLY)
    assert refused.status_code == 403 and "t_other" in refused.json()["detail"]
    batch = {"blueprint": "t_other", "requests": [body]}
    assert http.post("/v1/decisions:batch", json=batch, headers=NOTIFY_ONLY).status_code == 403
    assert stream(redis_client, "t_other") == []

    other = http.post("/v1/decisions", json={"blueprint": "t_other", **body}, headers=ALL).json()
    observation = {"decision_id": other["decision_id"], "observations": {"click": 1}}
    assert http.post("/v1/observations", json=observation, headers=NOTIFY_ONLY).status_code == 403
    named = {**observation, "blueprint": "t_other"}
    assert http.post("/v1/observations", json=named, headers=NOTIFY_ONLY).status_code == 403
    assert [e["kind"] for e in stream(redis_client, "t_other")] == ["decision"]
    assert http.post("/v1/observations", json=observation, headers=ALL).status_code == 202
    assert [e["kind"] for e in stream(redis_client, "t_other")] == ["decision", "observation"]
