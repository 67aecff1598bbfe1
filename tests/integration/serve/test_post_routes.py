"""The POST endpoints served by ``post_routes`` answer as FastAPI's own routes do.

Two apps over one real LooperClient and redis-server: the served one, and the same
app with ``post_routes=False`` (FastAPI parses and validates the body). Every request
gets the same status, content type and body from both, except decisions that succeed
(their ids are random): those must have the same fields.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from looper_common.serve.app import create_app
from looper_common.serve.tokens import parse_tokens
from tests.conftest import FEATURES
from tests.integration.serve.conftest import ALL, NOTIFY_ONLY, TOKENS, blueprints

pytestmark = pytest.mark.integration

PATHS = ["/v1/decisions", "/v1/decisions:batch", "/v1/observations"]
GOOD = {"blueprint": "t_notify", "unit_id": "u1", "features": FEATURES}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def both(sdk):
    with TestClient(create_app(sdk, blueprints(), parse_tokens(TOKENS), "inline")) as fast, \
            TestClient(create_app(sdk, blueprints(), parse_tokens(TOKENS), "inline", post_routes=False)) as ref:
        yield fast, ref


def _same(both, path: str, content: bytes, headers: dict[str, str]) -> int:
    fast, ref = (client.post(path, content=content, headers=headers) for client in both)
    assert (fast.status_code, fast.headers["content-type"]) == (ref.status_code, ref.headers["content-type"])
    if fast.status_code == 200 and path != "/v1/observations":
        assert fast.json().keys() == ref.json().keys()
    else:
        assert fast.content == ref.content, (fast.content, ref.content)
    return fast.status_code


@pytest.mark.parametrize(("content", "headers", "status"), [
    (json.dumps(GOOD).encode(), {**ALL, **JSON}, 200),
    (json.dumps(GOOD).encode(), {**ALL, "Content-Type": "application/vnd.looper+json; charset=utf-8"}, 200),
    (json.dumps(GOOD).encode(), ALL, 422),  # no content type: not read as JSON
    (json.dumps(GOOD).encode(), {**ALL, "Content-Type": "text/plain"}, 422),
    (b"", {**ALL, **JSON}, 422),  # no body
    (b'{"blueprint": "t_notify",', {**ALL, **JSON}, 422),  # bad JSON, at its offset
    (b"\xff\xfe\x00", {**ALL, **JSON}, 400),  # not text
    (b"[1, 2]", {**ALL, **JSON}, 422),
    (b"NaN", {**ALL, **JSON}, 422),
    (json.dumps({**GOOD, "features": {**FEATURES, "recency": float("nan")}}).encode(), {**ALL, **JSON}, 422),
    (json.dumps({**GOOD, "blueprint": "t_other"}).encode(), {**NOTIFY_ONLY, **JSON}, 403),
    (json.dumps({**GOOD, "blueprint": "nope"}).encode(), {**ALL, **JSON}, 422),
    (json.dumps({**GOOD, "ts": 1.5}).encode(), {**ALL, **JSON}, 422),
    (json.dumps({**GOOD, "extra": 1}).encode(), {**ALL, **JSON}, 422),
])
def test_decisions_answer_as_fastapi_does(both, content, headers, status):
    assert _same(both, "/v1/decisions", content, headers) == status


def test_batches_and_observations_answer_as_fastapi_does(both):
    batch = {"blueprint": "t_notify", "requests": [{"unit_id": "a", "features": FEATURES}, {"unit_id": 3}]}
    assert _same(both, "/v1/decisions:batch", json.dumps(batch).encode(), {**ALL, **JSON}) == 422
    batch["requests"][1] = {"unit_id": "b", "features": {}}
    assert _same(both, "/v1/decisions:batch", json.dumps(batch).encode(), {**ALL, **JSON}) == 422
    observed = {"decision_id": "x", "blueprint": "t_notify", "observations": {"click": 1}}
    assert _same(both, "/v1/observations", json.dumps(observed).encode(), {**ALL, **JSON}) == 202
    assert _same(both, "/v1/observations", b'{"decision_id": "x"}', {**ALL, **JSON}) == 422


def test_other_methods_and_paths_are_fastapis(both):
    fast, ref = both
    for method, path in [("GET", "/v1/decisions"), ("POST", "/v1/decisions/"), ("PUT", "/v1/observations")]:
        a, b = (client.request(method, path, headers=ALL, follow_redirects=False) for client in both)
        assert (a.status_code, a.content) == (b.status_code, b.content)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries({}, optional={
    "blueprint": st.sampled_from(["t_notify", "t_other", "nope"]) | JSON_VALUES,
    "unit_id": st.text(max_size=5) | JSON_VALUES,
    "features": st.just(FEATURES) | JSON_VALUES,
    "ts": st.integers() | JSON_VALUES,
    "decision_id": st.text(max_size=5),
    "observations": st.dictionaries(st.sampled_from(["click", "buy"]), st.integers() | st.booleans()) | JSON_VALUES,
    "requests": st.lists(st.fixed_dictionaries({"unit_id": st.text(max_size=3), "features": st.just(FEATURES)}),
                         max_size=2) | JSON_VALUES,
})


@given(path=st.sampled_from(PATHS), body=FIELDS | JSON_VALUES,
       content_type=st.sampled_from(["application/json", "text/plain", None]))
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_generated_bodies_answer_as_fastapi_does(redis_url, path, body, content_type):
    from looper_common.sdk import LooperClient

    sdk = LooperClient(redis_url, blueprints=blueprints(), pointer_ttl_s=0.0)
    headers = {**ALL, **({"Content-Type": content_type} if content_type else {})}
    with TestClient(create_app(sdk, blueprints(), parse_tokens(TOKENS), "inline")) as fast, \
            TestClient(create_app(sdk, blueprints(), parse_tokens(TOKENS), "inline", post_routes=False)) as ref:
        _same((fast, ref), path, json.dumps(body).encode(), headers)
