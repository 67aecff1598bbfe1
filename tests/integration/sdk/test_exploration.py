"""Exploration against a real redis-server: published overrides, and replaying logged decisions."""

from __future__ import annotations

import json
import logging
import math
import random
import time

import numpy as np
import pandas as pd
import pytest
import redis

from looper_common.contracts import events, policy_store
from looper_common.contracts.blueprint import ExplorationSpec
from looper_common.publishing.pointer import rollback
from looper_common.publishing.redis_policy import meta_key, publish_policy
from looper_common.sdk.client import LooperClient
from looper_common.sdk.exploration import action_distribution, replay, replay_matches
from tests.conftest import FEATURES, make_blueprint

pytestmark = pytest.mark.integration
ACTIONS = ["send", "skip", "later"]
TTL = 3600


def _blueprint(exploration: dict):
    return make_blueprint(
        decision={"actions": ACTIONS, "default_action": "skip"},
        policy={"type": "argmax", "exploration": exploration},
    )


def _units(n: int, seed: int) -> pd.DataFrame:
    scores = np.random.default_rng(seed).normal(size=(n, len(ACTIONS)))
    return pd.DataFrame({
        "unit_id": [f"u{i}" for i in range(n)],
        "action": [ACTIONS[i] for i in scores.argmax(axis=1)],
        **{f"score_{a}": scores[:, j] for j, a in enumerate(ACTIONS)},
    })


def _events(client: redis.Redis, blueprint: str) -> list[dict]:
    return [json.loads(f[b"e"]) for _, f in client.xrange(events.stream_key(blueprint))]


def _sdk(redis_url: str, bp, pointer_ttl_s: float = 0.0) -> LooperClient:
    return LooperClient(redis_url, blueprints={bp.name: bp}, pointer_ttl_s=pointer_ttl_s)


def test_a_published_override_is_applied_until_a_rollback_to_a_version_without_one(redis_client, redis_url):
    bp = _blueprint({"type": "epsilon_greedy", "epsilon": 0.1})
    override = ExplorationSpec(type="softmax", temperature=0.5, floor=0.05)
    units = _units(50, seed=1)
    publish_policy(redis_client, bp, units, version="v1", ttl_seconds=TTL)
    publish_policy(redis_client, bp, units, version="v2", ttl_seconds=TTL, exploration=override)
    assert json.loads(redis_client.hget(meta_key(bp.name, "v2"), "exploration")) == override.model_dump()
    assert redis_client.hget(meta_key(bp.name, "v1"), "exploration") is None
    sdk = _sdk(redis_url, bp)
    requests = [(u, FEATURES) for u in units["unit_id"]] + [("unknown", FEATURES)]

    *served, default = sdk.get_decisions(bp.name, requests)

    greedy_of = dict(zip(units["unit_id"], units["action"], strict=True))
    for d in served:
        assert d.policy_version == "v2"
        assert d.action_probs == action_distribution(override, ACTIONS, greedy_of[d.unit_id], d.scores)
        assert d.propensity == d.action_probs[d.action] and min(d.action_probs.values()) >= 0.05
    # the default carries no version, so the blueprint's exploration
    assert default.is_default and default.action_probs == action_distribution(bp.policy.exploration, ACTIONS, "skip")

    assert rollback(redis_client, bp.name) == ("v2", "v1")
    after = sdk.get_decisions(bp.name, requests[:10])
    for d in after:
        greedy = max(d.scores, key=d.scores.get)
        assert d.policy_version == "v1"
        assert d.action_probs == action_distribution(bp.policy.exploration, ACTIONS, greedy, d.scores)
        assert d.action_probs[greedy] == pytest.approx(0.9 + 0.1 / 3)

    # a new version with its own override: applied as soon as the pointer moves
    publish_policy(redis_client, bp, units, version="v3", ttl_seconds=TTL,
                   exploration=ExplorationSpec(type="none"))
    assert all(max(d.action_probs.values()) == 1.0 for d in sdk.get_decisions(bp.name, requests[:10]))


def test_the_override_is_read_with_the_pointer_and_cached_with_it(redis_client, redis_url):
    bp = _blueprint({"type": "epsilon_greedy", "epsilon": 0.1})
    publish_policy(redis_client, bp, _units(5, seed=2), version="v1", ttl_seconds=TTL,
                   exploration=ExplorationSpec(epsilon=0.3))
    sdk = _sdk(redis_url, bp, pointer_ttl_s=0.5)
    first = sdk.get_decision(bp.name, "u0", FEATURES)
    redis_client.hset(meta_key(bp.name, "v1"), "exploration", ExplorationSpec(epsilon=0.6).model_dump_json())
    cached = sdk.get_decision(bp.name, "u0", FEATURES)
    assert first.action_probs == cached.action_probs == action_distribution(
        ExplorationSpec(epsilon=0.3), ACTIONS, max(first.scores, key=first.scores.get))

    time.sleep(0.6)  # the cache expires: a refresh is GET + HGET in one pipeline
    redis_client.config_resetstat()
    refreshed = sdk.get_decision(bp.name, "u0", FEATURES)
    stats = redis_client.info("commandstats")
    assert stats["cmdstat_get"]["calls"] == 1 and stats["cmdstat_hget"]["calls"] == 1
    assert max(refreshed.action_probs.values()) == pytest.approx(0.4 + 0.6 / 3)


def test_an_invalid_override_falls_back_to_the_blueprints_spec_with_one_warning(redis_client, redis_url, caplog):
    bp = _blueprint({"type": "epsilon_greedy", "epsilon": 0.1})
    publish_policy(redis_client, bp, _units(5, seed=3), version="v1", ttl_seconds=TTL)
    redis_client.hset(meta_key(bp.name, "v1"), "exploration", '{"type": "thompson", "epsilon": 2}')
    sdk = _sdk(redis_url, bp)
    with caplog.at_level(logging.WARNING, logger="looper_common.sdk.active_policy"):
        decisions = [sdk.get_decision(bp.name, f"u{i}", FEATURES) for i in range(5)]
    for d in decisions:
        greedy = max(d.scores, key=d.scores.get)
        assert d.action_probs == action_distribution(bp.policy.exploration, ACTIONS, greedy, d.scores)
    warnings = [r for r in caplog.records if "invalid exploration" in r.getMessage()]
    assert len(warnings) == 1 and "v1" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "exploration",
    [
        {"type": "epsilon_greedy", "epsilon": 0.2, "floor": 0.1},
        {"type": "softmax", "temperature": 0.5},
        {"type": "softmax", "temperature": 2.0, "floor": 0.15},
    ],
)
def test_every_logged_decision_replays_exactly(redis_client, redis_url, exploration):
    bp = _blueprint(exploration)
    spec = bp.policy.exploration
    n = 3_000
    rng = random.Random(9)
    redis_client.set(policy_store.active_key(bp.name), "v1")
    for i in range(n):
        scores = {a: rng.gauss(0, 2) for a in ACTIONS}
        entry = policy_store.encode_entry(max(scores, key=scores.get), scores)
        redis_client.set(policy_store.entry_key(bp.name, "v1", f"u{i}"), entry)
    sdk = _sdk(redis_url, bp)
    units = [f"u{i}" for i in range(n)] + [f"new{i}" for i in range(100)]  # and some defaults
    decisions = sdk.get_decisions(bp.name, [(u, FEATURES) for u in units[:2_000]])
    decisions += [sdk.get_decision(bp.name, u, FEATURES) for u in units[2_000:]]

    logged = _events(redis_client, bp.name)

    assert [e["decision_id"] for e in logged] == [d.decision_id for d in decisions]
    assert all(replay_matches(e) for e in logged)
    # a map read back from a table may lose the order: the blueprint's actions restore it
    shuffled = [{**e, "action_probs": dict(reversed(e["action_probs"].items()))} for e in logged]
    assert [replay(e, actions=ACTIONS) for e in shuffled] == [e["action"] for e in logged]
    tampered = {**logged[0], "action": next(a for a in ACTIONS if a != logged[0]["action"])}
    assert not replay_matches(tampered)
    for e in logged:
        probs = e["action_probs"]
        assert list(probs) == ACTIONS and math.isclose(sum(probs.values()), 1.0, rel_tol=1e-12)
        assert min(probs.values()) >= spec.floor
        assert e["propensity"] == probs[e["action"]] > 0
        if spec.type == "softmax" and spec.floor == 0 and not e["is_default"]:
            weights = {a: math.exp(s / spec.temperature) for a, s in e["scores"].items()}
            total = sum(weights.values())
            assert probs == pytest.approx({a: w / total for a, w in weights.items()}, rel=1e-9)
    assert sum(e["is_default"] for e in logged) == 100
    # the draw follows the distribution: the mean propensity of the chosen action matches
    chosen = np.mean([e["propensity"] for e in logged])
    expected = np.mean([sum(p * p for p in e["action_probs"].values()) for e in logged])
    assert chosen == pytest.approx(expected, abs=0.03)
