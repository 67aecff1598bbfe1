"""Everything that touches Redis, on a real Redis Cluster: publish, switch, rollback, lookups, ingestion."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
import redis

from looper_common.contracts import events, policy_store, redis_conn
from looper_common.ingest import event_streams, ingest_events
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS
from looper_common.publishing.pointer import rollback
from looper_common.publishing.redis_policy import publish_policy
from looper_common.sdk.client import LooperClient
from tests.conftest import FEATURES, make_blueprint

pytestmark = pytest.mark.integration
TTL = 3_600
TS = datetime(2026, 1, 3, 9, tzinfo=UTC)
BP = make_blueprint()
OTHER = make_blueprint(name="t_other")
UNITS = [f"u{i}" for i in range(300)]


def units_frame(action: str) -> pd.DataFrame:
    """Every unit gets ``action`` (score 0.9 for it), so a served decision tells which version it came from."""
    other = "skip" if action == "send" else "send"
    return pd.DataFrame({"unit_id": UNITS, "action": action, f"score_{action}": 0.9, f"score_{other}": 0.1})


def sdk(redis_cluster, **options) -> LooperClient:
    return LooperClient(redis_cluster.url, blueprints={BP.name: BP, OTHER.name: OTHER}, cluster=True,
                        pointer_ttl_s=0.0, **options)


def test_a_blueprints_pointer_history_and_meta_share_a_slot_and_entries_spread(cluster_client):
    slots = {cluster_client.keyslot(k) for k in (policy_store.active_key(BP.name), policy_store.history_key(BP.name),
                                                  policy_store.meta_key(BP.name, "v1"),
                                                  policy_store.meta_key(BP.name, "v2"))}
    assert len(slots) == 1
    entry_nodes = {cluster_client.get_node_from_key(policy_store.entry_key(BP.name, "v1", u)).name for u in UNITS}
    assert len(entry_nodes) == 3  # every primary holds some of a version's entries


def test_publish_switch_rollback_and_lookups_on_the_cluster(cluster_client, redis_cluster):
    first = publish_policy(cluster_client, BP, units_frame("send"), version="v1", ttl_seconds=TTL)
    assert first.switched and first.units == len(UNITS)
    client = sdk(redis_cluster)
    served = client.get_decisions(BP.name, [(u, FEATURES) for u in UNITS], ts=TS)
    assert all(not d.is_default and d.policy_version == "v1" for d in served)
    assert {max(d.scores, key=d.scores.get) for d in served} == {"send"}

    second = publish_policy(cluster_client, BP, units_frame("skip"), version="v2", ttl_seconds=TTL)
    assert second.switched and second.previous == "v1"
    assert cluster_client.lrange(policy_store.history_key(BP.name), 0, -1) == [b"v1"]
    one = client.get_decision(BP.name, "u7", FEATURES, ts=TS)
    assert one.policy_version == "v2" and max(one.scores, key=one.scores.get) == "skip"

    rerun = publish_policy(cluster_client, BP, units_frame("skip"), version="v2", ttl_seconds=TTL)
    assert not rerun.switched  # a rerun leaves pointer and history alone
    assert rollback(cluster_client, BP.name) == ("v2", "v1")
    assert cluster_client.get(policy_store.active_key(BP.name)) == b"v1"
    assert cluster_client.hexists(policy_store.meta_key(BP.name, "v2"), "rolled_back_at")
    again = publish_policy(cluster_client, BP, units_frame("skip"), version="v2", ttl_seconds=TTL)
    assert not again.switched  # the rolled-back version stays out
    back = client.get_decisions(BP.name, [(u, FEATURES) for u in UNITS[:50]], ts=TS)
    assert {d.policy_version for d in back} == {"v1"} and not any(d.is_default for d in back)
    unknown = client.get_decision(BP.name, "nobody", FEATURES, ts=TS)
    assert unknown.is_default and unknown.default_reason == events.UNKNOWN_UNIT
    assert client.get_decision(OTHER.name, "u1", FEATURES, ts=TS).default_reason == events.NO_POLICY
    client.close()


def test_the_pointer_switch_is_refused_for_an_older_run_date_on_the_cluster(cluster_client):
    publish_policy(cluster_client, BP, units_frame("send"), version="d2", ttl_seconds=TTL,
                   meta={"run_date": "2026-01-03"})
    old = publish_policy(cluster_client, BP, units_frame("skip"), version="d1", ttl_seconds=TTL,
                         meta={"run_date": "2026-01-02"})
    assert not old.switched and cluster_client.get(policy_store.active_key(BP.name)) == b"d2"


def test_ingestion_reads_every_blueprints_stream_on_the_cluster(cluster_client, redis_cluster, tmp_path):
    publish_policy(cluster_client, BP, units_frame("send"), version="v1", ttl_seconds=TTL)
    client = sdk(redis_cluster)
    decided = {name: client.get_decisions(name, [(u, FEATURES) for u in UNITS[:120]], ts=TS)
               for name in (BP.name, OTHER.name)}
    client.log_observations_batch([(d.decision_id, {"click": 1}, TS) for d in decided[BP.name][:40]])
    assert client.close() == 0
    streams = event_streams(cluster_client)
    assert streams == sorted(events.stream_key(n) for n in (BP.name, OTHER.name))
    lake = Lake(str(tmp_path / "lake"))
    lake.ensure_tables()
    stats = ingest_events(cluster_client, lake, {BP.name: BP, OTHER.name: OTHER}, streams=streams, batch_size=100)
    assert stats.decisions == 240 and stats.observations == 40 and stats.quarantined == 0
    decisions = lake.read(BRONZE_DECISIONS, columns=["decision_id"]).table["decision_id"].to_pylist()
    assert sorted(decisions) == sorted(d.decision_id for ds in decided.values() for d in ds)
    assert len(lake.read(BRONZE_OBSERVATIONS, columns=["event_id"]).table) == 40
    for stream in streams:  # acknowledged and trimmed
        assert cluster_client.xpending(stream, events.INGEST_GROUP)["pending"] == 0
        assert cluster_client.xlen(stream) == 0
    again = ingest_events(cluster_client, lake, {BP.name: BP, OTHER.name: OTHER}, streams=streams)
    assert again.events == 0


def test_the_factory_builds_a_cluster_client_from_settings(redis_cluster, monkeypatch):
    from looper_common.contracts.config import load_settings

    monkeypatch.setenv("LOOPER_REDIS_URL", redis_cluster.url)
    monkeypatch.setenv("LOOPER_REDIS_CLUSTER", "true")
    settings = load_settings("local")
    assert settings.redis.cluster
    client = redis_conn.from_settings(settings.redis)
    assert isinstance(client, redis.RedisCluster) and client.ping()
    assert redis_conn.config_values(client, "maxmemory-policy") == [b"noeviction"] * 3 or \
        redis_conn.config_values(client, "maxmemory-policy") == ["noeviction"] * 3


def test_monitoring_reads_stream_and_memory_health_on_the_cluster(cluster_client, redis_cluster):
    from looper_common.monitoring.flow import redis_health

    client = sdk(redis_cluster)
    client.get_decisions(BP.name, [(u, FEATURES) for u in UNITS[:30]], ts=TS)
    client.close()
    metrics = {m.check: m.value for m in redis_health(cluster_client, BP.name)}
    assert metrics["stream_length"] == 30
    assert metrics["redis_memory_bytes"] > 0 and metrics["redis_memory_share"] is None  # no maxmemory set
