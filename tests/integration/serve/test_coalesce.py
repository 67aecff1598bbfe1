"""Decisions asked at the same time (``--sdk-calls async``) are decided together, each checked alone."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from looper_common.contracts import events, policy_store
from looper_common.sdk import LooperClient, replay_matches
from looper_common.serve.app import create_app
from looper_common.serve.tokens import parse_tokens
from tests.conftest import FEATURES
from tests.integration.serve.conftest import ALL, TOKENS, blueprints, stream

pytestmark = pytest.mark.integration


async def _ask_together(app, bodies: list[dict]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = await asyncio.gather(*(client.post("/v1/decisions", headers=ALL, json=b) for b in bodies))
    await app.state.service.flush()
    return answers


def test_concurrent_decisions_share_rounds_and_a_bad_one_fails_alone(redis_url, redis_client):
    redis_client.set(policy_store.active_key("t_notify"), "v1")
    for i in range(20):
        redis_client.set(policy_store.entry_key("t_notify", "v1", f"u{i}"),
                         policy_store.encode_entry("send", {"send": 0.9, "skip": 0.1}))
    sdk = LooperClient(redis_url, blueprints=blueprints(), pointer_ttl_s=60.0)
    app = create_app(sdk, blueprints(), parse_tokens(TOKENS))  # the default: async
    bodies = [{"blueprint": "t_notify", "unit_id": f"u{i}", "features": FEATURES} for i in range(20)]
    bodies.insert(7, {"blueprint": "t_notify", "unit_id": "bad", "features": {**FEATURES, "visits": "many"}})
    answers = asyncio.run(_ask_together(app, bodies))
    assert [a.status_code for a in answers] == [200] * 7 + [422] + [200] * 13
    assert "feature 'visits' must be int" in answers[7].json()["detail"][0]["msg"]
    served = [a.json() for a in answers if a.status_code == 200]
    assert [d["unit_id"] for d in served] == [f"u{i}" for i in range(20)]
    assert all(d["policy_version"] == "v1" and d["scores"] == {"send": 0.9, "skip": 0.1} for d in served)
    logged = stream(redis_client)
    assert sorted(e["decision_id"] for e in logged) == sorted(d["decision_id"] for d in served)
    assert all(replay_matches(e) for e in logged)
    groups = redis_client.xinfo_groups(events.stream_key("t_notify"))  # created as the SDK creates it
    assert [g["name"] for g in groups] == [events.INGEST_GROUP.encode()]
    rounds, requests = app.state.service.rounds()["t_notify"]
    assert requests == 20 and rounds < 20, rounds  # decided together: fewer MGET/XADD rounds than requests


def test_a_hung_redis_gets_the_default_and_the_events_are_sent_once_it_answers(redis_process):
    server = redis_process("--maxmemory-policy", "noeviction")
    server.client.set(policy_store.active_key("t_notify"), "v1")
    sdk = LooperClient(server.url, blueprints=blueprints(), pointer_ttl_s=60.0, socket_timeout=0.2,
                       breaker_base_s=0.01, breaker_max_s=0.01)
    app = create_app(sdk, blueprints(), parse_tokens(TOKENS))
    bodies = [{"blueprint": "t_notify", "unit_id": f"u{i}", "features": FEATURES} for i in range(5)]

    async def scenario() -> tuple[list[httpx.Response], int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.post("/v1/decisions", headers=ALL, json=bodies[0])  # connects, caches the pointer
            server.pause()
            try:
                answers = await asyncio.gather(*(client.post("/v1/decisions", headers=ALL, json=b) for b in bodies))
            finally:
                server.resume()
        return answers, await app.state.service.flush()

    answers, unsent = asyncio.run(scenario())
    assert [a.status_code for a in answers] == [200] * 5
    assert all(a.json()["is_default"] for a in answers)
    assert {a.json()["decision_id"] for a in answers} <= {e["decision_id"] for e in stream(server.client)}
    assert unsent == 0 and len(stream(server.client)) == 6
