"""Online and hybrid serving through LooperClient: the compact champion scores the request's features."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from looper_common.contracts import events, policy_store
from looper_common.decision_science.policies import policy_frame, policy_scores, target_probabilities
from looper_common.publishing.compact_model import publish_for_serving
from looper_common.publishing.redis_policy import publish_policy
from looper_common.sdk.client import LooperClient
from tests.conftest import make_blueprint
from tests.integration.publishing.test_compact_model import FAMILIES, fitted, request_features, units

pytestmark = pytest.mark.integration
PARAMS = {"threshold": 0.3}


def serving(mode: str):
    return make_blueprint(serving={"mode": mode})


def publish(redis_client, blueprint, model, known: pd.DataFrame, version: str = "v1") -> None:
    meta = publish_for_serving(redis_client, blueprint, version, {"clicked": model}, PARAMS, ttl_seconds=600)
    publish_policy(redis_client, blueprint, policy_frame(model, known, blueprint, PARAMS), version=version,
                   ttl_seconds=600, meta=meta)


def published_sdk(redis_url, redis_client, mode: str, n_units: int):
    """A blueprint served in ``mode``, its model published for ``n_units`` units, and an SDK reading it."""
    blueprint = serving(mode)
    model = fitted(FAMILIES["hist_gbdt"], "binary", blueprint, with_gaps=True)
    known = units(n_units, 3, with_gaps=False)
    publish(redis_client, blueprint, model, known)
    return blueprint, model, known, LooperClient(redis_url, blueprints={blueprint.name: blueprint}, pointer_ttl_s=0.0)


def decide(sdk, blueprint, frame: pd.DataFrame):
    """``get_decisions`` for every unit of ``frame`` with its request features."""
    return sdk.get_decisions(blueprint.name, [(u, request_features(r)) for u, (_, r) in
                                              zip(frame["unit_id"], frame.iterrows(), strict=True)])


def stream(redis_client, blueprint) -> list[dict]:
    return [json.loads(f[b"e"]) for _, f in redis_client.xrange(events.stream_key(blueprint.name))]


@pytest.mark.parametrize("mode", ["online", "hybrid"])
def test_the_request_is_scored_and_the_logged_distribution_is_what_ope_replays(redis_url, redis_client, mode):
    blueprint, model, known, sdk = published_sdk(redis_url, redis_client, mode, 60)
    # today's features differ from those published for the same units; u-new was never published
    today = units(60, 4, with_gaps=False).assign(unit_id=[*known["unit_id"][:59], "u-new"])
    decisions = decide(sdk, blueprint, today)
    offline = policy_scores(model, today, blueprint, PARAMS)
    expected = target_probabilities(offline, blueprint, PARAMS)
    actions = blueprint.decision.actions
    for d, scores, probs in zip(decisions, offline, expected, strict=True):
        assert not d.is_default and d.policy_version == "v1"
        np.testing.assert_allclose([d.scores[a] for a in actions], scores, rtol=0, atol=1e-6)
        np.testing.assert_allclose([d.action_probs[a] for a in actions], probs, rtol=0, atol=1e-12)
        assert d.propensity == d.action_probs[d.action]
    logged = stream(redis_client, blueprint)
    assert [e["scores"] for e in logged] == [d.scores for d in decisions]
    assert [e["propensity"] for e in logged] == [d.propensity for d in decisions]
    # the published entries (yesterday's features) would have given other scores
    looked_up = policy_frame(model, known, blueprint, PARAMS)
    assert not np.allclose(looked_up["score_send"][:59], offline[:59, 0])


def test_hybrid_serves_the_lookup_without_a_compact_model_and_fills_features_from_the_entry(
    redis_url, redis_client
):
    blueprint = serving("hybrid")
    model = fitted(FAMILIES["logistic"], "binary", blueprint, with_gaps=False)
    known = units(5, 3, with_gaps=False)
    frame = policy_frame(model, known, blueprint, PARAMS)
    publish_policy(redis_client, blueprint, frame, version="v1", ttl_seconds=600)  # no compact model
    sdk = LooperClient(redis_url, blueprints={blueprint.name: blueprint}, pointer_ttl_s=0.0)
    features = request_features(units(1, 9, with_gaps=False).iloc[0])
    [d] = sdk.get_decisions(blueprint.name, [("u0", features)])
    assert d.scores == pytest.approx({"send": frame["score_send"][0], "skip": frame["score_skip"][0]})
    # a version with its compact model: the request is scored; the entry's "f" features
    # count only where the request has none (the SDK requires every declared feature)
    meta = publish_for_serving(redis_client, blueprint, "v2", {"clicked": model}, PARAMS, ttl_seconds=600)
    publish_policy(redis_client, blueprint, frame, version="v2", ttl_seconds=600, meta=meta)
    redis_client.set(policy_store.entry_key(blueprint.name, "v2", "u0"),
                     json.dumps({"a": "skip", "s": {}, "f": {"visits": features["visits"] + 50}}))
    [d] = sdk.get_decisions(blueprint.name, [("u0", features)])
    one = pd.DataFrame([{**features, "unit_id": "u0"}])
    np.testing.assert_allclose([d.scores["send"], d.scores["skip"]],
                               policy_scores(model, one, blueprint, PARAMS)[0], rtol=0, atol=1e-6)


def test_lookup_mode_reads_no_compact_model_even_when_one_is_published(redis_url, redis_client):
    online = serving("online")
    model = fitted(FAMILIES["logistic"], "binary", online, with_gaps=False)
    known = units(5, 3, with_gaps=False)
    publish(redis_client, online, model, known)
    lookup = make_blueprint()  # same name, default serving: the published entries
    sdk = LooperClient(redis_url, blueprints={lookup.name: lookup}, pointer_ttl_s=0.0)
    [d] = sdk.get_decisions(lookup.name, [("u-new", request_features(known.iloc[0]))])
    assert d.is_default


def test_hybrid_takes_batch_only_features_from_the_entry_and_logs_them(redis_url, redis_client):
    features = [{"name": "recency", "type": "float"}, {"name": "visits", "type": "int", "source": "batch"},
                {"name": "opted_in", "type": "bool"}, {"name": "country", "type": "category"}]
    blueprint = make_blueprint(serving={"mode": "hybrid"}, features=features)
    model = fitted(FAMILIES["hist_gbdt"], "binary", blueprint, with_gaps=True)
    known = units(8, 3, with_gaps=False)
    frame = policy_frame(model, known, blueprint, PARAMS).assign(feature_visits=known["visits"].astype(int))
    meta = publish_for_serving(redis_client, blueprint, "v1", {"clicked": model}, PARAMS, ttl_seconds=600)
    publish_policy(redis_client, blueprint, frame, version="v1", ttl_seconds=600, meta=meta)
    entry = json.loads(redis_client.get(policy_store.entry_key(blueprint.name, "v1", "u2")))
    assert entry["f"] == {"visits": int(known["visits"][2])}
    sdk = LooperClient(redis_url, blueprints={blueprint.name: blueprint}, pointer_ttl_s=0.0)
    today = units(8, 4, with_gaps=False)
    asked = [{k: v for k, v in request_features(r).items() if k != "visits"} for _, r in today.iterrows()]
    decisions = sdk.get_decisions(blueprint.name, [("u2", asked[0]), ("u-new", asked[1])])
    # u2: today's request features with the published visits; u-new: visits unknown (missing)
    used = today.iloc[:2].assign(unit_id=["u2", "u-new"], visits=[known["visits"][2], np.nan])
    offline = policy_scores(model, used, blueprint, PARAMS)
    for d, scores in zip(decisions, offline, strict=True):
        assert not d.is_default
        np.testing.assert_allclose([d.scores["send"], d.scores["skip"]], scores, rtol=0, atol=1e-6)
    logged = stream(redis_client, blueprint)
    assert logged[0]["features"]["visits"] == int(known["visits"][2])  # what the decision was made from
    assert "visits" not in logged[1]["features"]
    with pytest.raises(Exception, match="missing feature"):  # a request feature is still required
        sdk.get_decisions(blueprint.name, [("u2", {k: v for k, v in asked[0].items() if k != "recency"})])


def test_batch_features_need_hybrid_serving():
    features = [{"name": "recency", "type": "float"}, {"name": "visits", "type": "int", "source": "batch"}]
    with pytest.raises(ValueError, match="only serving.mode hybrid"):
        make_blueprint(features=features)
    assert make_blueprint().version == make_blueprint(features=[
        {"name": n, "type": t, "source": "request"} for n, t in
        (("recency", "float"), ("visits", "int"), ("opted_in", "bool"), ("country", "category"))]).version


@pytest.mark.parametrize("mode", ["lookup", "hybrid"])
def test_the_planted_default_share_fault_serves_the_default_in_every_mode(redis_url, redis_client, mode):
    """The simulator's default-share fault (its units' entries and the compact model gone) defaults those units."""
    from looper_common.simulate.faults import DefaultShare, Faults, drop_entries

    blueprint, _, known, sdk = published_sdk(redis_url, redis_client, mode, 200)
    unit_ids = list(known["unit_id"])
    dropped = Faults(default=DefaultShare(0.5, day=2)).unpublished_units(blueprint.name, 2, unit_ids)
    assert drop_entries(redis_client, blueprint.name, dropped) == len(dropped) > 60
    decisions = decide(sdk, blueprint, known)
    defaulted = {u for u, d in zip(unit_ids, decisions, strict=True) if d.is_default}
    assert defaulted == set(dropped)
    assert {d.default_reason for d in decisions if d.is_default} == {events.UNKNOWN_UNIT}
