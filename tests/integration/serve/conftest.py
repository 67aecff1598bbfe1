"""An app over a real LooperClient and redis-server, driven through Starlette's TestClient."""

from __future__ import annotations

import json

import pytest
import redis
from fastapi.testclient import TestClient

from looper_common.contracts import events
from looper_common.sdk import LooperClient
from looper_common.serve.app import create_app
from looper_common.serve.tokens import parse_tokens
from tests.conftest import make_blueprint

TOKENS = "all-tok,notify-tok:t_notify"
ALL = {"Authorization": "Bearer all-tok"}
NOTIFY_ONLY = {"Authorization": "Bearer notify-tok"}


def blueprints() -> dict:
    notify, other = make_blueprint(), make_blueprint(name="t_other")
    return {notify.name: notify, other.name: other}


def stream(redis_client: redis.Redis, blueprint: str = "t_notify") -> list[dict]:
    return [json.loads(f[events.PAYLOAD_FIELD.encode()]) for _, f in redis_client.xrange(events.stream_key(blueprint))]


@pytest.fixture
def sdk(redis_url: str, redis_client: redis.Redis) -> LooperClient:
    return LooperClient(redis_url, blueprints=blueprints(), pointer_ttl_s=0.0)


@pytest.fixture(params=["async", "inline", "thread"])
def http(sdk: LooperClient, request: pytest.FixtureRequest):
    """The app with the SDK's round trips on async Redis (the default), blocking on the event loop, in a thread."""
    with TestClient(create_app(sdk, blueprints(), parse_tokens(TOKENS), request.param)) as client:
        yield client
