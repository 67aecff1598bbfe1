"""A primary SIGKILLed while the SDK serves: defaults flagged ``redis_error``, then the policy again after failover."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from looper_common.contracts import events, policy_store
from looper_common.publishing.redis_policy import publish_policy
from looper_common.sdk.client import LooperClient
from tests.conftest import FEATURES, make_blueprint
from tests.integration.rcluster.test_redis_cluster import TTL, UNITS, units_frame
from tests.redis_cluster import LocalCluster

pytestmark = pytest.mark.integration
TS = datetime(2026, 1, 3, 9, tzinfo=UTC)
BP = make_blueprint()


@pytest.fixture
def own_cluster(tmp_path):
    """A cluster of this test's own: it loses a primary."""
    cluster = LocalCluster(tmp_path / "cluster")
    yield cluster
    cluster.stop()


def test_a_killed_primary_serves_flagged_defaults_then_the_policy_after_failover(own_cluster):
    publish_policy(own_cluster.client(), BP, units_frame("send"), version="v1", ttl_seconds=TTL)
    client = LooperClient(own_cluster.url, blueprints={BP.name: BP}, cluster=True, pointer_ttl_s=0.0,
                          breaker_base_s=0.01, breaker_max_s=0.05)
    requests = [(u, FEATURES) for u in UNITS]
    assert not any(d.is_default for d in client.get_decisions(BP.name, requests, ts=TS))

    victim = policy_store.entry_key(BP.name, "v1", UNITS[0])
    dead = own_cluster.kill_master_of(victim)
    during = client.get_decisions(BP.name, requests, ts=TS)
    assert len(during) == len(UNITS)
    assert all(d.is_default and d.default_reason == events.REDIS_ERROR for d in during)

    own_cluster.wait_failover(dead)
    after = None
    for _ in range(400):  # the client finds the new primary on its own (a call or a few after its errors)
        after = client.get_decisions(BP.name, requests, ts=TS)
        if not any(d.is_default for d in after):
            break
        time.sleep(0.05)  # let the circuit breaker's back-off pass
    assert after is not None and not any(d.is_default for d in after)
    assert {d.policy_version for d in after} == {"v1"}  # the replica had every entry
    stats = client.stats()
    assert stats["by_blueprint"][BP.name][f"default_{events.REDIS_ERROR}"] >= len(UNITS)
    client.close(timeout_s=5)
