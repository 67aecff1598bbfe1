"""The compact form of every model family scores as the fitted model does, and the SDK loads it from Redis."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from looper_common.contracts import policy_store
from looper_common.decision_science.policies import choose_actions, policy_scores
from looper_common.publishing.compact_model import (
    NotExportable,
    compact_document,
    encode_document,
    export_model,
    publish_compact,
)
from looper_common.sdk.online import CompactModel, OnlineModels, load_document, with_batch_features
from looper_common.training.examples import to_model_frame
from looper_common.training.families import build_model
from tests.conftest import make_blueprint

FAMILIES = {
    "hist_gbdt": {"family": "hist_gbdt", "learning_rate": 0.1, "max_leaf_nodes": 16, "min_samples_leaf": 10,
                  "l2_regularization": 0.01},
    "logistic": {"family": "logistic", "C": 1.0, "interactions": False},
    "logistic_interactions": {"family": "logistic", "C": 1.0, "interactions": True},
    "random_forest": {"family": "random_forest", "n_estimators": 20, "max_depth": 8, "min_samples_leaf": 3},
}
REGRESSION = {"hist_gbdt": FAMILIES["hist_gbdt"], "random_forest": FAMILIES["random_forest"],
              "linear_interactions": {"family": "linear", "alpha": 1.0, "interactions": True}}


def units(n: int, seed: int, *, with_gaps: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    recency = rng.exponential(5.0, n)
    country = rng.choice(["us", "gb", "de"], n).astype(object)
    if with_gaps:  # missing numbers, a missing and an unseen category
        recency[rng.random(n) < 0.1] = np.nan
        country[rng.random(n) < 0.05] = None
        country[rng.random(n) < 0.05] = "zz"
    return pd.DataFrame({
        "unit_id": [f"u{i}" for i in range(n)], "recency": recency,
        "visits": rng.integers(0, 20, n).astype(float), "opted_in": rng.random(n) < 0.5,
        "country": country, "action": rng.choice(["send", "skip"], n),
    })


def labels(frame: pd.DataFrame, task: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = (frame["action"] == "send") * (frame["opted_in"].astype(float) + 0.1 * frame["visits"])
    if task == "binary":
        return (rng.random(len(frame)) < 0.1 + 0.5 * (signal > 1.0)).astype(int)
    if task == "multiclass":
        return np.clip(np.round(signal + rng.normal(0, 0.7, len(frame))), 0, 3).astype(int)
    return signal.to_numpy() * 3.0 + rng.normal(0, 1.0, len(frame))


def fitted(params: dict, task: str, blueprint, *, with_gaps: bool):
    train = units(1500, 1, with_gaps=with_gaps)
    model = build_model(dict(params), task, ["country", "action"], ["recency", "visits", "opted_in"])
    model.fit(to_model_frame(train, blueprint), labels(train, task, 2))
    return model


def request_features(row: pd.Series) -> dict[str, object]:
    """What product code passes to get_decision: Python values, None where a value is missing."""
    out = {}
    for name in ("recency", "visits", "opted_in", "country"):
        value = row[name]
        out[name] = None if value is None or (isinstance(value, float) and np.isnan(value)) else value
    out["visits"] = int(out["visits"])
    out["opted_in"] = bool(out["opted_in"])
    return out


def assert_online_equals_offline(model, blueprint, test: pd.DataFrame) -> None:
    raw, digest = encode_document(compact_document(model, blueprint))
    online = load_document(raw, digest)
    offline = policy_scores(model, test, blueprint)
    served = np.array([[online.scores(request_features(row))[a] for a in blueprint.decision.actions]
                       for _, row in test.iterrows()])
    np.testing.assert_allclose(served, offline, rtol=0, atol=1e-6)
    greedy = np.asarray(blueprint.decision.actions)[choose_actions(offline, blueprint)]
    assert [online.choose(dict(zip(blueprint.decision.actions, s, strict=True))) for s in served] == list(greedy)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_binary_scores_online_equal_predict_proba(family):
    blueprint = make_blueprint()
    gaps = family in ("hist_gbdt", "random_forest")  # the linear families need complete numbers
    model = fitted(FAMILIES[family], "binary", blueprint, with_gaps=gaps)
    test = units(400, 7, with_gaps=gaps)
    assert_online_equals_offline(model, blueprint, test)
    # the scores are P(label = 1 | features, action), as predict_proba gives them
    frame = to_model_frame(test.assign(action="send"), blueprint)
    online = CompactModel(compact_document(model, blueprint))
    sent = [online.score(request_features(row), "send") for _, row in test.iterrows()]
    np.testing.assert_allclose(sent, model.predict_proba(frame)[:, 1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", ["hist_gbdt", "logistic", "random_forest"])
def test_multiclass_expected_class_online_equals_offline(family):
    blueprint = make_blueprint(model={"task": "multiclass"},
                               policy={"type": "argmax", "params": {"offsets": {"skip": 0.1}}})
    gaps = family != "logistic"
    model = fitted(FAMILIES[family], "multiclass", blueprint, with_gaps=gaps)
    assert len(model.classes_) == 4
    assert_online_equals_offline(model, blueprint, units(300, 8, with_gaps=gaps))


@pytest.mark.parametrize("family", ["hist_gbdt", "logistic", "random_forest"])
def test_multiclass_expected_reward_online_equals_offline(family):
    # each class worth its declared reward: the SDK scores sum_c P(c) * reward(c) as the policy does
    outcome = {"name": "outcome", "observation": "outcome", "window": "1h", "aggregation": "max",
               "classes": {0: 0.0, 1: 1.0, 2: 6.0, 3: -5.0}}
    blueprint = make_blueprint(labels=[outcome], model={"task": "multiclass"}, objectives={"maximize": "outcome"},
                               policy={"type": "argmax"})
    gaps = family != "logistic"
    model = fitted(FAMILIES[family], "multiclass", blueprint, with_gaps=gaps)
    document = compact_document(model, blueprint)
    assert document["rewards"] == [0.0, 1.0, 6.0, -5.0]
    assert_online_equals_offline(model, blueprint, units(300, 10, with_gaps=gaps))
    online = CompactModel(document)
    test = units(50, 11, with_gaps=gaps)
    proba = model.predict_proba(to_model_frame(test.assign(action="send"), blueprint))
    sent = [online.score(request_features(row), "send") for _, row in test.iterrows()]
    np.testing.assert_allclose(sent, proba @ np.array([0.0, 1.0, 6.0, -5.0]), rtol=0, atol=1e-6)
    # a class the label does not declare has no reward: no compact form (served by lookup)
    fewer = make_blueprint(labels=[{**outcome, "classes": {0: 0.0, 1: 1.0, 2: 6.0}}], model={"task": "multiclass"},
                           objectives={"maximize": "outcome"}, policy={"type": "argmax"})
    with pytest.raises(NotExportable, match="not all declared"):
        compact_document(model, fewer)


@pytest.mark.parametrize("family", sorted(REGRESSION))
def test_regression_value_online_equals_predict(family):
    blueprint = make_blueprint(model={"task": "regression"}, policy={"type": "argmax"})
    gaps = family != "linear_interactions"
    model = fitted(REGRESSION[family], "regression", blueprint, with_gaps=gaps)
    assert_online_equals_offline(model, blueprint, units(300, 9, with_gaps=gaps))


def test_a_model_outside_the_families_and_a_weighted_policy_are_not_served_online():
    with pytest.raises(NotExportable):
        export_model(object())
    blueprint = make_blueprint(policy={"type": "weighted_sum", "params": {"weights": {"revenue": 0.1}}})
    model = fitted(FAMILIES["logistic"], "binary", blueprint, with_gaps=False)
    with pytest.raises(ValueError, match="weighted_sum policy is not served online"):
        CompactModel(compact_document(model, blueprint))


def test_published_model_is_loaded_once_per_version_and_checked(redis_client):
    blueprint = make_blueprint()
    model = fitted(FAMILIES["hist_gbdt"], "binary", blueprint, with_gaps=True)
    document = compact_document(model, blueprint, {"threshold": 0.3})
    meta = publish_compact(redis_client, blueprint, "v1", document, ttl_seconds=600)
    redis_client.hset(policy_store.meta_key(blueprint.name, "v1"), mapping=meta)
    models = OnlineModels(redis_client)
    loaded = models.get(blueprint.name, "v1")
    assert loaded is not None and loaded.params["threshold"] == 0.3
    assert models.get(blueprint.name, "v1") is loaded  # once per version
    # a changed byte fails the digest: that version is served by lookup
    raw = redis_client.get(meta["compact_model"])
    redis_client.set(meta["compact_model"], raw.replace(b'"threshold":0.3', b'"threshold":0.9'))
    redis_client.hset(policy_store.meta_key(blueprint.name, "v2"), mapping={**meta})
    assert OnlineModels(redis_client).get(blueprint.name, "v1") is None
    assert models.get(blueprint.name, "v3") is None  # no compact model published


def test_scored_entries_use_batch_features_and_keep_the_lookup_entry_when_scoring_fails():
    blueprint = make_blueprint()
    model = fitted(FAMILIES["hist_gbdt"], "binary", blueprint, with_gaps=True)
    online = CompactModel(compact_document(model, blueprint))
    full = {"recency": 1.0, "visits": 12, "opted_in": True, "country": "us"}
    lookup = policy_store.encode_entry("skip", {"send": 0.0, "skip": 0.0})
    with_batch = json.dumps({"a": "skip", "s": {}, "f": {"visits": 12}}).encode()
    partial = {k: v for k, v in full.items() if k != "visits"}
    bad = {**full, "recency": "soon"}
    looked_up = [None, with_batch, lookup]
    requests = with_batch_features([("u1", full), ("u2", partial), ("u3", bad)], looked_up)  # hybrid fills "f"
    assert requests[1][1] == full
    scored, hybrid, kept = online.entries(requests, looked_up)
    assert scored == hybrid == policy_store.encode_entry(online.choose(online.scores(full)), online.scores(full))
    assert kept == lookup
