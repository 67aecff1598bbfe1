"""The SDK serves the default to the holdback's units, and the policy to the others, through real Redis."""

from __future__ import annotations

import pandas as pd
import pytest

from looper_common.publishing.redis_policy import publish_policy
from looper_common.sdk.client import LooperClient
from looper_common.sdk.holdback import in_holdback
from tests.conftest import FEATURES, make_blueprint

pytestmark = pytest.mark.integration


def test_held_back_units_get_the_default(redis_url, redis_client):
    blueprint = make_blueprint(name="t_holdback", holdback={"share": 0.2})
    units = [f"u{i}" for i in range(2000)]
    publish_policy(redis_client, blueprint, pd.DataFrame({"unit_id": units, "action": "send", "score_send": 0.9,
                                                          "score_skip": 0.1}),
                   version="20260301-m1-hold", ttl_seconds=600)
    client = LooperClient(redis_url, blueprints={blueprint.name: blueprint}, pointer_ttl_s=0.0)
    decisions = client.get_decisions(blueprint.name, [(u, FEATURES) for u in units])
    held = [d for d in decisions if in_holdback(blueprint, d.unit_id)]
    assert 300 < len(held) < 500
    # the default's distribution, as for every default decision (the blueprint's exploration around it)
    assert all(d.is_default and d.policy_version is None and max(d.action_probs, key=d.action_probs.get) == "skip"
               for d in held)
    assert all(d.default_reason == "holdback" for d in decisions if in_holdback(blueprint, d.unit_id))
    assert not any(d.is_default for d in decisions if not in_holdback(blueprint, d.unit_id))
    # stable: the same units are held back on the next call
    again = client.get_decisions(blueprint.name, [(u, FEATURES) for u in units])
    assert [d.is_default for d in again] == [d.is_default for d in decisions]
