"""Decision ids (UUIDv7 with a blueprint tag) and replayable exploration."""

from __future__ import annotations

import random
import uuid

import pytest

from looper_common.contracts.blueprint import ExplorationSpec
from looper_common.contracts.ids import blueprint_tag, new_decision_id, observation_event_id, tag_of
from looper_common.sdk.exploration import action_distribution, draw_action, replay, replay_matches, uniform_from_id


def test_decision_id_is_uuid7_time_ordered_and_tagged():
    tag = blueprint_tag("notification_send")
    first = new_decision_id(tag, 1_700_000_000_000)
    later = new_decision_id(tag, 1_700_000_000_001)
    parsed = uuid.UUID(first)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert int(parsed.hex[:12], 16) == 1_700_000_000_000
    assert first < later
    assert tag_of(first) == tag
    assert len({new_decision_id(tag, 5) for _ in range(10_000)}) == 10_000


def test_seeded_ids_repeat():
    one = [new_decision_id(1, 5, random.Random(3).getrandbits(64)) for _ in range(2)]
    assert one[0] == one[1]


def test_observation_ids_are_deterministic():
    assert observation_event_id("d", "click", 5, 1.0) == observation_event_id("d", "click", 5, 1.0)
    assert observation_event_id("d", "click", 5, 1.0) != observation_event_id("d", "click", 6, 1.0)


def test_epsilon_greedy_distribution():
    probs = action_distribution(ExplorationSpec(epsilon=0.2), ["a", "b", "c", "d"], "c")
    assert probs == pytest.approx({"a": 0.05, "b": 0.05, "c": 0.85, "d": 0.05})


def test_no_exploration_is_deterministic():
    probs = action_distribution(ExplorationSpec(type="none"), ["a", "b"], "b")
    assert probs == {"a": 0.0, "b": 1.0}
    assert draw_action("any-id", probs) == "b"


def test_softmax_and_floor():
    spec = ExplorationSpec(type="softmax", temperature=0.5, floor=0.1)
    probs = action_distribution(spec, ["a", "b", "c"], "a", {"a": 3.0, "b": 0.0, "c": 0.0})
    assert sum(probs.values()) == pytest.approx(1.0)
    assert min(probs.values()) == pytest.approx(0.1)
    assert probs["a"] == pytest.approx(0.8)


def test_draw_is_replayable_and_follows_the_distribution():
    probs = {"send": 0.3, "skip": 0.7}
    ids = [new_decision_id(7, 1_000 + i) for i in range(20_000)]
    draws = [draw_action(i, probs) for i in ids]
    assert draws == [draw_action(i, probs) for i in ids]
    assert draws.count("send") / len(draws) == pytest.approx(0.3, abs=0.015)
    assert 0.0 <= uniform_from_id(ids[0]) < 1.0


def test_replay_recomputes_the_logged_action_in_the_blueprints_order():
    probs = {"send": 0.3, "skip": 0.5, "later": 0.2}
    for i in range(2_000):
        did = new_decision_id(7, 1_000 + i)
        logged = {"decision_id": did, "action_probs": probs, "action": draw_action(did, probs)}
        assert replay(logged) == logged["action"] and replay_matches(logged)
        shuffled = {**logged, "action_probs": dict(reversed(probs.items()))}
        assert replay(shuffled, actions=["send", "skip", "later"]) == logged["action"]


def test_replay_refuses_a_distribution_it_cannot_draw_from():
    with pytest.raises(ValueError, match="no action has a positive probability"):
        replay({"decision_id": "d", "action_probs": {"a": 0.0}})
    with pytest.raises(TypeError, match="action_probs must be a mapping"):
        replay({"decision_id": "d", "action_probs": [0.5, 0.5]})
