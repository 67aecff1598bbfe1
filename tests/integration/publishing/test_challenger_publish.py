"""publish_policies with ``promotion.stage: shadow``: the challenger published beside the champion, then shadowed.

train -> evaluate -> train a second model (another blueprint version) -> publish, on
test_model_loop's lake (delta-rs), MLflow on SQLite and a real redis-server; the SDK
then scores the challenger's compact model on every decision and logs it.
"""

from __future__ import annotations

import json

import pytest

from looper_common.contracts import events, policy_store
from looper_common.decision_science import evaluate_models
from looper_common.publishing import publish_policies
from looper_common.publishing.publish import model_version_of
from looper_common.sdk.client import LooperClient
from looper_common.sdk.online import OnlineModels
from looper_common.training import train_models
from tests.conftest import FEATURES, make_blueprint
from tests.integration.test_model_loop import BP, DAYS, RUN_DATE, lake, settings  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration


def test_a_shadow_challenger_is_published_without_the_pointer_and_logged_by_the_sdk(
        lake, settings, redis_client, redis_url):  # noqa: F811
    train_models(settings, lake, BP, RUN_DATE, lookback_days=DAYS)
    evaluate_models(settings, lake, BP, RUN_DATE, n_bootstrap=20, lookback_days=DAYS)  # v1: the champion
    staged = make_blueprint(**{k: BP.model_dump(mode="json")[k] for k in ("labels", "model", "policy")},
                            promotion={"stage": "shadow"}, serving={"mode": "online"})
    assert train_models(settings, lake, staged, RUN_DATE, lookback_days=DAYS).challengers[0][1] == "2"
    published = publish_policies(settings, lake, staged, RUN_DATE)
    assert model_version_of(published.active) == "1"  # the champion stays active
    doc = json.loads(redis_client.get(policy_store.challenger_key(staged.name)))
    assert doc["stage"] == "shadow" and model_version_of(doc["version"]) == "2" and doc["share"] is None
    assert redis_client.exists(policy_store.meta_key(staged.name, doc["version"]))

    redis_client.delete(events.stream_key(staged.name))
    sdk = LooperClient(redis_url, blueprints={staged.name: staged}, pointer_ttl_s=0.0)
    requests = [(f"u{i}", {**FEATURES, "recency": float(i % 10)}) for i in range(40)]
    decisions = sdk.get_decisions(staged.name, requests)
    sdk.close()
    assert {d.policy_version for d in decisions} == {published.active}
    challenger = OnlineModels(redis_client).get(staged.name, doc["version"])
    logged = [json.loads(f[b"e"]) for _, f in redis_client.xrange(events.stream_key(staged.name))]
    for event, (_, features) in zip(logged, requests, strict=True):
        scores = challenger.scores(features)
        assert event["shadow_version"] == doc["version"]
        assert event["shadow_scores"] == pytest.approx(scores, abs=1e-12)
        assert event["shadow_action"] == challenger.choose(scores)

    publish_policies(settings, lake, BP, RUN_DATE)  # no stage: the challenger is no longer staged
    assert not redis_client.exists(policy_store.challenger_key(BP.name))
