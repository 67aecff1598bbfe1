"""The batch decision path gives exactly what deciding one at a time with the reference gives."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from looper_common.contracts import ids, policy_store
from looper_common.contracts.blueprint import ExplorationSpec
from looper_common.sdk.decision_batch import Decision, ServingPlan, encode_decision_event, encode_json
from looper_common.sdk.exploration import action_distribution, draw_action
from tests.conftest import FEATURES, make_blueprint

ACTIONS = ["send", "skip", "later"]


def _blueprint(exploration: dict):
    return make_blueprint(
        decision={"actions": ACTIONS, "default_action": "skip"},
        policy={"type": "argmax", "exploration": exploration},
    )


def _valid_entry(raw: bytes, actions) -> bool:
    """A policy entry the SDK may serve: JSON ingestion reads, a known action, numeric scores or null."""
    def refuse(constant):
        raise ValueError(constant)

    try:
        doc = json.loads(raw, parse_constant=refuse)
    except ValueError:
        return False
    if not isinstance(doc, dict) or "s" not in doc or not isinstance(doc.get("a"), str) or doc["a"] not in actions:
        return False
    scores = doc["s"]
    if scores is None:
        return True
    return isinstance(scores, dict) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in scores.values()
    )


def _reference(bp, spec, version, requests, stamps, entries, rands):
    """The per-decision loop get_decisions ran before the batch path, step by step."""
    tag = ids.blueprint_tag(bp.name)
    decisions, payloads = [], []
    for (unit_id, features), ts_ms, raw, rand in zip(requests, stamps, entries, rands, strict=True):
        decision_id = ids.new_decision_id(tag, ts_ms, rand)
        reason = None
        if raw is None or not _valid_entry(raw, bp.decision.actions):
            greedy, scores, served, served_spec = bp.decision.default_action, None, None, bp.policy.exploration
            reason = "unknown_unit" if raw is None else "corrupt_entry"
        else:
            (greedy, scores), served, served_spec = policy_store.decode_entry(raw), version, spec
        probs = action_distribution(served_spec, bp.decision.actions, greedy, scores)
        action = draw_action(decision_id, probs)
        d = Decision(decision_id, bp.name, str(unit_id), action, probs[action], probs, scores,
                     served, reason is not None, ts_ms, reason)
        decisions.append(d)
        payloads.append(encode_decision_event(bp, d, features))
    return decisions, payloads


def _entries(rng: random.Random, n: int) -> list[bytes | None]:
    out: list[bytes | None] = []
    for i in range(n):
        if i % 7 == 0:
            out.append(None)
        elif i % 11 == 0:  # no scores: softmax falls back to epsilon around the greedy action
            out.append(policy_store.encode_entry(ACTIONS[i % 3], {}))
        elif i % 13 == 0:
            out.append(CORRUPT[i % len(CORRUPT)])
        elif i % 5 == 0:  # a few shared entries, floats json spells with exponents, ints
            out.append(policy_store.encode_entry("later", {"send": 1e-05, "skip": 2, "later": 1e16}))
        else:
            scores = {a: rng.uniform(-3, 3) for a in ACTIONS}
            out.append(policy_store.encode_entry(max(scores, key=scores.get), scores))
    return out


CORRUPT = [  # entries no publish writes: each unit gets the default, the batch goes on
    b"garbage{",
    b'{"a":"send"}',  # no "s"
    b'{"s":{"send":1}}',  # no "a"
    b'{"a":5,"s":{}}',
    b'{"a":["send"],"s":{}}',
    b'{"a":"nope","s":{}}',  # not one of the blueprint's actions
    b'{"a":"send","s":"high"}',
    b'{"a":"send","s":{"send":"x"}}',
    b'{"a":"send","s":{"send":true}}',
    b'{"a":"send","s":{"send":NaN,"skip":1e400}}',  # ingestion would quarantine the event
    b"[1,2]",
    b"",
    b"\xff\xfe",
]


def _parsed(payload: bytes) -> str:
    return repr(json.loads(payload))  # repr: NaN compares equal to itself


@pytest.mark.parametrize(
    "exploration",
    [
        {"type": "epsilon_greedy", "epsilon": 0.1},
        {"type": "epsilon_greedy", "epsilon": 0.3, "floor": 0.2},
        {"type": "softmax", "temperature": 0.5},
        {"type": "softmax", "temperature": 2.0, "floor": 0.1},
        {"type": "none"},
    ],
)
def test_batch_equals_one_at_a_time(exploration):
    bp = _blueprint(exploration)
    rng = random.Random(5)
    n = 2_000
    odd = [
        {**FEATURES, "recency": float("nan")},
        {**FEATURES, "recency": np.float64(0.1)},
        {**FEATURES, "country": "Zürich \u2603"},
        {**FEATURES, "recency": 1e-05},
        {"country": "fr", "opted_in": False, "visits": 10**30, "recency": 3},
    ]
    requests = [(f"u{i}" if i % 9 else f"ü-{i}", odd[i % len(odd)] if i % 3 == 0 else FEATURES) for i in range(n)]
    stamps = [1_767_225_600_000 + i // 100 for i in range(n)]
    entries = _entries(rng, n)
    rands = [rng.getrandbits(64) for _ in range(n)]
    spec = bp.policy.exploration
    plan = ServingPlan(bp, "v%1", spec, ids.blueprint_tag(bp.name))

    decisions, payloads = plan.decide(requests, stamps, entries, rands)

    want_decisions, want_payloads = _reference(bp, spec, "v%1", requests, stamps, entries, rands)
    assert [repr(d) for d in decisions] == [repr(d) for d in want_decisions]  # repr: NaN == NaN
    assert [_parsed(p) for p in payloads] == [_parsed(p) for p in want_payloads]
    same_bytes = [p == w for p, w, (_, f) in zip(payloads, want_payloads, requests, strict=True) if f is FEATURES]
    assert sum(same_bytes) > 0.5 * len(same_bytes)  # only exponent floats are spelled differently


def test_an_override_spec_applies_to_served_units_only():
    bp = _blueprint({"type": "epsilon_greedy", "epsilon": 0.1})
    override = ExplorationSpec(type="softmax", temperature=0.7, floor=0.05)
    plan = ServingPlan(bp, "v2", override, ids.blueprint_tag(bp.name))
    entry = policy_store.encode_entry("send", {"send": 1.0, "skip": 0.0, "later": -1.0})
    served, default = plan.decide([("a", FEATURES), ("b", FEATURES)], [5, 5], [entry, None])[0]
    assert served.action_probs == action_distribution(override, ACTIONS, "send", served.scores)
    assert default.action_probs == action_distribution(bp.policy.exploration, ACTIONS, "skip")


def test_decisions_do_not_share_their_distribution():
    bp = _blueprint({"type": "epsilon_greedy", "epsilon": 0.1})
    plan = ServingPlan(bp, None, bp.policy.exploration, 1)
    first, second = plan.decide([("a", FEATURES), ("b", FEATURES)], [5, 5], [None, None])[0]
    first.action_probs["send"] = 9.0
    assert second.action_probs["send"] == pytest.approx(0.1 / 3)


def test_encode_json_falls_back_to_json_where_msgspec_differs():
    assert encode_json({"x": math.inf, "y": None}) == b'{"x":Infinity,"y":null}'
    assert encode_json({"x": np.float64(0.5)}) == b'{"x":0.5}'  # a float subclass, as json writes it
    with pytest.raises(TypeError):  # neither encoder takes it; json's error, as before
        encode_json({"x": np.float32(0.5)})
    assert json.loads(encode_json({"x": 1e-05, "c": "\u00e9"})) == {"x": 1e-05, "c": "\u00e9"}


def test_batch_ids_equal_single_ids():
    rng = random.Random(2)
    stamps = [rng.randrange(0, 1 << 48) for _ in range(5_000)] + [-1, 1 << 50]
    rands = [rng.getrandbits(64) for _ in stamps]
    tag = ids.blueprint_tag("t_notify")
    assert ids.new_decision_ids(tag, stamps, rands) == [
        ids.new_decision_id(tag, t, r) for t, r in zip(stamps, rands, strict=True)
    ]
    same_ts = [1_767_225_600_000] * len(rands)  # the one-timestamp path
    assert ids.new_decision_ids(tag, same_ts, rands) == [ids.new_decision_id(tag, same_ts[0], r) for r in rands]
    fresh = ids.new_decision_ids(tag, [7] * 1_000)
    assert len(set(fresh)) == 1_000 and all(ids.tag_of(i) == tag for i in fresh)


def test_each_corrupt_entry_gets_the_default_with_its_reason():
    bp = _blueprint({"type": "epsilon_greedy", "epsilon": 0.1})
    plan = ServingPlan(bp, "v1", bp.policy.exploration, ids.blueprint_tag(bp.name))
    good = policy_store.encode_entry("send", {"send": 0.9, "skip": 0.1, "later": 0.0})
    entries = [*CORRUPT, good, None]
    counts: dict[str, int] = {}
    decisions, payloads = plan.decide([(f"u{i}", FEATURES) for i in range(len(entries))], [5] * len(entries),
                                      entries, None, "unknown_unit", counts)
    reasons = [d.default_reason for d in decisions]
    assert reasons == ["corrupt_entry"] * len(CORRUPT) + [None, "unknown_unit"]
    assert [d.is_default for d in decisions] == [True] * len(CORRUPT) + [False, True]
    assert counts == {"corrupt_entry": len(CORRUPT), "unknown_unit": 1}
    events_ = [json.loads(p) for p in payloads]
    assert [e.get("default_reason") for e in events_] == reasons
    assert "default_reason" not in events_[len(CORRUPT)]  # a served decision carries none
    assert all(e["action"] in ACTIONS and e["policy_version"] is None for e in events_[: len(CORRUPT)])


def test_cold_start_explores_while_no_policy_is_active_and_never_after():
    blueprint = _blueprint({"type": "epsilon_greedy", "epsilon": 0.1, "cold_start": 0.9})
    requests, stamps = [("u1", FEATURES)] * 2, [1_700_000_000_000] * 2
    cold, _ = ServingPlan(blueprint, None, blueprint.policy.exploration, 7).decide(requests, stamps, [None, None])
    assert cold[0].action_probs == pytest.approx({"send": 0.3, "skip": 0.4, "later": 0.3})
    assert cold[0].is_default and cold[0].propensity == cold[0].action_probs[cold[0].action]
    # a version is active: an unknown unit's default is explored with the blueprint's epsilon
    warm, _ = ServingPlan(blueprint, "v1", blueprint.policy.exploration, 7).decide(
        requests, stamps, [None, None], missing="unknown_unit")
    assert warm[0].action_probs == pytest.approx({"send": 0.1 / 3, "skip": 1 - 0.2 / 3, "later": 0.1 / 3})
    assert _blueprint({"type": "epsilon_greedy", "epsilon": 0.1}).version != blueprint.version
