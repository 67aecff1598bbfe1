"""Shadow and canary challengers served through real Redis: what is logged, who gets which version."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from looper_common.contracts import events, policy_store
from looper_common.publishing.challenger import challenger_document
from looper_common.publishing.redis_policy import publish_policy
from looper_common.sdk.challenger import in_canary
from looper_common.sdk.client import LooperClient
from looper_common.sdk.holdback import in_holdback
from tests.conftest import FEATURES, make_blueprint

pytestmark = pytest.mark.integration
UNITS = [f"u{i}" for i in range(3000)]
CHAMPION, CHALLENGER = "20260301-m1-champ", "20260301-m2-chall"


def _publish(redis_client, blueprint, version, action, switch):
    score = 0.9 if action == "send" else 0.1
    frame = pd.DataFrame({"unit_id": UNITS, "action": action, "score_send": score, "score_skip": 0.2})
    publish_policy(redis_client, blueprint, frame, version=version, ttl_seconds=600, switch=switch)


def _stream(redis_client, blueprint):
    return [json.loads(fields[b"e"]) for _, fields in redis_client.xrange(events.stream_key(blueprint.name))]


def _staged(redis_client, blueprint):
    redis_client.delete(events.stream_key(blueprint.name))
    _publish(redis_client, blueprint, CHAMPION, "send", True)
    _publish(redis_client, blueprint, CHALLENGER, "skip", False)
    redis_client.set(policy_store.challenger_key(blueprint.name), challenger_document(CHALLENGER, blueprint))


def test_a_shadow_challenger_is_logged_beside_the_champion_it_does_not_replace(redis_url, redis_client):
    blueprint = make_blueprint(name="t_shadow", promotion={"stage": "shadow"})
    _staged(redis_client, blueprint)
    assert redis_client.get(policy_store.active_key(blueprint.name)).decode() == CHAMPION  # not switched
    client = LooperClient(redis_url, blueprints={blueprint.name: blueprint}, pointer_ttl_s=0.0)
    decisions = client.get_decisions(blueprint.name, [(u, FEATURES) for u in UNITS[:200]])
    client.close()
    assert {d.policy_version for d in decisions} == {CHAMPION}
    logged = _stream(redis_client, blueprint)
    assert [e["decision_id"] for e in logged] == [d.decision_id for d in decisions]
    assert all(e["policy_version"] == CHAMPION and e["shadow_version"] == CHALLENGER for e in logged)
    assert all(e["shadow_action"] == "skip" and e["shadow_scores"] == {"send": 0.1, "skip": 0.2} for e in logged)
    # the champion's own greedy action (send) is served, with its exploration
    assert all(max(e["action_probs"], key=e["action_probs"].get) == "send" and "variant" not in e for e in logged)


def test_no_challenger_key_means_champion_only_events(redis_url, redis_client):
    blueprint = make_blueprint(name="t_shadow_none", promotion={"stage": "shadow"})
    _staged(redis_client, blueprint)
    redis_client.delete(policy_store.challenger_key(blueprint.name))  # publish_challenger found no challenger
    client = LooperClient(redis_url, blueprints={blueprint.name: blueprint}, pointer_ttl_s=0.0)
    client.get_decisions(blueprint.name, [(u, FEATURES) for u in UNITS[:50]])
    client.close()
    assert not any("shadow_action" in e for e in _stream(redis_client, blueprint))


def test_canary_units_get_the_challenger_at_the_share_and_stay_there(redis_url, redis_client):
    share, n = 0.1, len(UNITS)
    blueprint = make_blueprint(name="t_canary", promotion={"stage": "canary", "canary": {"share": share}},
                               holdback={"share": 0.2})
    _staged(redis_client, blueprint)
    client = LooperClient(redis_url, blueprints={blueprint.name: blueprint}, pointer_ttl_s=0.0)
    decisions = client.get_decisions(blueprint.name, [(u, FEATURES) for u in UNITS])
    again = client.get_decisions(blueprint.name, [(u, FEATURES) for u in UNITS])
    client.close()
    canary = [d for d in decisions if d.policy_version == CHALLENGER]
    # binomial: within 4.5 standard deviations of n * share
    assert abs(len(canary) - n * share) < 4.5 * math.sqrt(n * share * (1 - share))
    assert {d.unit_id for d in canary} == {u for u in UNITS if in_canary(blueprint.name, u, share)}
    assert [d.policy_version for d in again] == [d.policy_version for d in decisions]  # stable
    assert not any(in_holdback(blueprint, d.unit_id) for d in canary)  # disjoint from the holdback
    assert all(max(d.action_probs, key=d.action_probs.get) == "skip" for d in canary)  # the challenger's greedy skip
    served = [d for d in decisions if d.policy_version == CHAMPION]
    assert len(served) + len(canary) + sum(d.default_reason == "holdback" for d in decisions) == n
    logged = {e["decision_id"]: e for e in _stream(redis_client, blueprint)}
    assert len(logged) == 2 * n
    for d in decisions:
        event = logged[d.decision_id]
        assert (event.get("variant") == "canary") == (d.policy_version == CHALLENGER)
        assert event["propensity"] == d.propensity and event["action"] == d.action
        assert event["policy_version"] == d.policy_version
