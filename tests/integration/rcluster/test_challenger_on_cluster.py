"""Shadow and canary challengers on a real Redis Cluster: a batch's entries span every slot."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from looper_common.contracts import events, policy_store
from looper_common.publishing.challenger import challenger_document
from looper_common.publishing.redis_policy import publish_policy
from looper_common.sdk.challenger import in_canary
from looper_common.sdk.client import LooperClient
from tests.conftest import FEATURES, make_blueprint

pytestmark = pytest.mark.integration
TS = datetime(2026, 3, 1, 9, tzinfo=UTC)
UNITS = [f"u{i}" for i in range(400)]
CHAMPION, CHALLENGER = "20260301-m1-champ", "20260301-m2-chall"


def _staged(cluster_client, blueprint) -> None:
    """The champion (greedy send) switched in, the challenger (greedy skip) beside it, the key naming it."""
    for version, score_send, switch in ((CHAMPION, 0.9, True), (CHALLENGER, 0.1, False)):
        action = "send" if score_send > 0.5 else "skip"
        frame = pd.DataFrame({"unit_id": UNITS, "action": action, "score_send": score_send, "score_skip": 0.2})
        publish_policy(cluster_client, blueprint, frame, version=version, ttl_seconds=600, switch=switch)
    cluster_client.set(policy_store.challenger_key(blueprint.name), challenger_document(CHALLENGER, blueprint))


def _decide(redis_cluster, blueprint):
    client = LooperClient(redis_cluster.url, blueprints={blueprint.name: blueprint}, cluster=True, pointer_ttl_s=0.0)
    decisions = client.get_decisions(blueprint.name, [(u, FEATURES) for u in UNITS], ts=TS)
    assert client.close() == 0
    return decisions


def _logged(cluster_client, blueprint) -> dict[str, dict]:
    stream = cluster_client.xrange(events.stream_key(blueprint.name))
    return {e["decision_id"]: e for e in (json.loads(fields[b"e"]) for _, fields in stream)}


def test_a_shadow_challengers_entries_are_read_across_slots(cluster_client, redis_cluster):
    blueprint = make_blueprint(name="t_shadow_rc", promotion={"stage": "shadow"})
    _staged(cluster_client, blueprint)
    nodes = {cluster_client.get_node_from_key(policy_store.entry_key(blueprint.name, CHALLENGER, u)).name
             for u in UNITS}
    assert len(nodes) == 3  # the batch's challenger keys live on every primary
    decisions = _decide(redis_cluster, blueprint)
    assert not any(d.is_default for d in decisions), {d.default_reason for d in decisions}
    assert {d.policy_version for d in decisions} == {CHAMPION}
    logged = _logged(cluster_client, blueprint)
    assert sorted(logged) == sorted(d.decision_id for d in decisions)
    assert all(e["shadow_version"] == CHALLENGER and e["shadow_action"] == "skip" for e in logged.values())
    assert all(e["shadow_scores"] == {"send": 0.1, "skip": 0.2} for e in logged.values())


def test_a_canarys_units_get_the_challenger_on_the_cluster(cluster_client, redis_cluster):
    share = 0.3
    blueprint = make_blueprint(name="t_canary_rc", promotion={"stage": "canary", "canary": {"share": share}})
    _staged(cluster_client, blueprint)
    decisions = _decide(redis_cluster, blueprint)
    assert not any(d.is_default for d in decisions), {d.default_reason for d in decisions}
    canary = {d.unit_id for d in decisions if d.policy_version == CHALLENGER}
    assert canary == {u for u in UNITS if in_canary(blueprint.name, u, share)} and canary
    assert {d.policy_version for d in decisions if d.unit_id not in canary} == {CHAMPION}
    logged = _logged(cluster_client, blueprint)
    for d in decisions:
        assert (logged[d.decision_id].get("variant") == "canary") == (d.unit_id in canary)
    # the canary serves the challenger's greedy skip, everyone else the champion's send
    assert all(max(d.action_probs, key=d.action_probs.get) == ("skip" if d.unit_id in canary else "send")
               for d in decisions)
