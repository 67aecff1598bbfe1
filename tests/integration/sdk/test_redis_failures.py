"""The SDK when Redis hangs, refuses writes, is down, holds corrupt entries, or is misconfigured.

Each test runs a real redis-server of its own (tests/conftest.py, ``redis_process``):
paused with SIGSTOP to hang, at ``maxmemory`` with ``noeviction`` to refuse writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import redis

from looper_common.contracts import events, policy_store
from looper_common.sdk.client import LooperClient, LooperError
from tests.conftest import FEATURES, ROOT, free_port, make_blueprint

pytestmark = pytest.mark.integration

BP = make_blueprint()


def _client(url: str, **kwargs) -> LooperClient:
    kwargs.setdefault("pointer_ttl_s", 0.0)
    kwargs.setdefault("socket_timeout", 2.0)  # no spurious timeout on a loaded machine
    if "breaker_base_s" in kwargs:
        kwargs.setdefault("breaker_max_s", max(30.0, kwargs["breaker_base_s"]))
    return LooperClient(url, blueprints={BP.name: BP}, **kwargs)


def _stream(client: redis.Redis) -> list[dict]:
    return [json.loads(f[b"e"]) for _, f in client.xrange(events.stream_key(BP.name))]


def _publish(client: redis.Redis, units: dict[str, bytes]) -> None:
    client.set(policy_store.active_key(BP.name), "v1")
    for unit, entry in units.items():
        client.set(policy_store.entry_key(BP.name, "v1", unit), entry)


def _write_calls(client: redis.Redis) -> int:
    """XADD and script calls Redis has seen, rejected ones included."""
    stats = client.info("commandstats")
    total = 0
    for name in ("cmdstat_xadd", "cmdstat_evalsha", "cmdstat_eval"):
        entry = stats.get(name, {})
        total += sum(int(entry.get(k, 0)) for k in ("calls", "rejected_calls", "failed_calls"))
    return total


GOOD = policy_store.encode_entry("send", {"send": 0.9, "skip": 0.1})


def test_a_hung_redis_costs_one_timeout_per_backoff_not_one_per_call(redis_process):
    server = redis_process()
    sdk = _client(server.url, socket_timeout=1.0, breaker_base_s=60.0)
    assert sdk.get_decision(BP.name, "u0", FEATURES).default_reason == "no_policy"  # connected
    before = server.connections_received()
    server.pause()
    try:
        reasons = [sdk.get_decision(BP.name, f"u{i}", FEATURES).default_reason for i in range(20)]
    finally:
        server.resume()
    assert reasons == ["redis_error"] + ["circuit_open"] * 19
    stats = sdk.stats()
    assert stats["circuit"] == "open" and stats["circuit_opened"] == 1
    assert stats["events_buffered"] == 20 and stats["failed_sends"] == 0  # no write was even tried
    # one timed-out read on the open connection; no call reconnected while Redis hung
    assert server.connections_received() - before <= 1
    assert sdk.flush() == 0 and len(_stream(server.client)) == 21
    sdk.close()


def test_refused_writes_are_kept_without_a_retry_per_call_and_reads_go_on(redis_process):
    server = redis_process("--maxmemory-policy", "noeviction")
    _publish(server.client, {"u1": GOOD})
    sdk = _client(server.url, breaker_base_s=60.0)
    first = sdk.get_decision(BP.name, "u1", FEATURES)  # the stream made (with ingestion's group, by a script)
    server.client.config_set("maxmemory", 1)  # every write is refused: OOM
    before = _write_calls(server.client)
    decisions = [sdk.get_decision(BP.name, "u1", FEATURES) for _ in range(10)]
    assert all(not d.is_default and d.policy_version == "v1" for d in decisions)  # reads still served
    assert _write_calls(server.client) - before == 1  # one refused write, then the writes circuit holds
    stats = sdk.stats()
    assert stats["writes_circuit"] == "open" and stats["circuit"] == "closed"
    assert stats["events_buffered"] == 10 and stats["events_dropped"] == 0
    server.client.config_set("maxmemory", 0)
    assert sdk.close() == 0  # close sends what is kept, whatever the breaker says
    assert [e["decision_id"] for e in _stream(server.client)] == [d.decision_id for d in [first, *decisions]]


def test_kept_events_are_resent_in_bounded_slices_oldest_first(redis_process):
    server = redis_process("--maxmemory-policy", "noeviction")
    sdk = _client(server.url, breaker_base_s=0.2, resend_slice=1_000)
    server.client.config_set("maxmemory", 1)
    first = []
    for b in range(5):
        first += sdk.get_decisions(BP.name, [(f"u{b}-{i}", FEATURES) for i in range(500)])
    assert sdk.stats()["events_buffered"] == 2_500
    server.client.config_set("maxmemory", 0)
    while sdk.stats()["writes_circuit"] == "open":  # the back-off passes: the next call is the trial
        time.sleep(0.05)
    sizes = []
    for _ in range(3):
        sdk.get_decision(BP.name, "late", FEATURES)
        sizes.append((sdk.stats()["events_buffered"], server.client.xlen(events.stream_key(BP.name))))
    assert sizes == [(1_500, 1_001), (500, 2_002), (0, 2_503)]
    sent = [e["decision_id"] for e in _stream(server.client) if e["unit_id"] != "late"]
    assert sent == [d.decision_id for d in first]  # in order, each once
    sdk.close()


def test_the_buffer_is_bounded_and_what_is_dropped_is_counted_and_reported(redis_process):
    server = redis_process("--maxmemory-policy", "noeviction")
    sdk = _client(server.url, breaker_base_s=60.0, max_unsent=2)
    sdk.get_decision(BP.name, "u0", FEATURES)  # sent
    server.client.config_set("maxmemory", 1)
    kept = [sdk.get_decision(BP.name, f"u{i}", FEATURES) for i in range(1, 6)]
    stats = sdk.stats()
    assert stats["events_buffered"] == 2 and stats["events_dropped"] == 3 and sdk.dropped_events == 3
    server.client.config_set("maxmemory", 0)
    assert sdk.close() == 0
    assert [e["unit_id"] for e in _stream(server.client)] == ["u0", "u1", "u2"]  # the newest were dropped
    assert kept[0].unit_id == "u1"
    counters = server.client.hgetall(events.sdk_stats_key(BP.name))
    assert {k: int(v) for k, v in counters.items() if k != b"updated_ms"} == {
        b"decisions": 6, b"default_no_policy": 6, b"events_sent": 3, b"events_dropped": 3,
    }


def test_close_gives_up_after_its_timeout_and_counts_what_is_left():
    down = _client(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.05)
    for i in range(3):
        assert down.get_decision(BP.name, f"u{i}", FEATURES).default_reason == "circuit_open"
    assert down.close(timeout_s=0.2) == 3
    assert down.stats()["events_dropped"] == 3 and down.stats()["events_buffered"] == 0


_AT_EXIT = """
import gc, sys, redis
from looper_common.sdk.client import LooperClient
from tests.conftest import FEATURES, make_blueprint
url, bp = sys.argv[1], make_blueprint()
sdk = LooperClient(url, blueprints={bp.name: bp}, breaker_base_s=60.0, breaker_max_s=60.0,
                  close_timeout_s=1.0)
admin = redis.Redis.from_url(url)
if sys.argv[2] == "refused-then-back":
    admin.config_set("maxmemory", 1)
print(sdk.get_decision(bp.name, "u1", FEATURES).decision_id)
admin.config_set("maxmemory", 0)
del sdk  # dropped without close(): its kept event must still go out at exit
gc.collect()
"""


def _exit_run(url: str, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _AT_EXIT, url, mode], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=True)


def test_process_exit_flushes_what_is_kept(redis_process):
    server = redis_process("--maxmemory-policy", "noeviction")
    run = _exit_run(server.url, "refused-then-back")
    assert [e["decision_id"] for e in _stream(server.client)] == [run.stdout.strip()]
    assert "lost" not in run.stderr


def test_process_exit_counts_and_logs_what_cannot_be_sent(redis_process):
    server = redis_process("--maxmemory-policy", "noeviction")
    server.client.set(events.stream_key(BP.name), "not a stream")  # every XADD: WRONGTYPE
    run = _exit_run(server.url, "wrong-type")
    assert "1 event(s) were never sent to Redis and are lost" in run.stderr


def test_corrupt_entries_get_the_default_and_the_batch_goes_on(redis_process):
    server = redis_process()
    corrupt = [b"garbage{", b'{"a":"send"}', b'{"a":7,"s":{}}', b'{"a":"send","s":{"send":"x"}}']
    _publish(server.client, {"good": GOOD, **{f"bad{i}": raw for i, raw in enumerate(corrupt)}})
    sdk = _client(server.url)
    units = ["good", *(f"bad{i}" for i in range(len(corrupt))), "nobody"]
    decisions = sdk.get_decisions(BP.name, [(u, FEATURES) for u in units])
    assert [d.default_reason for d in decisions] == [None, *["corrupt_entry"] * len(corrupt), "unknown_unit"]
    assert [e.get("default_reason") for e in _stream(server.client)] == [d.default_reason for d in decisions]
    assert sdk.stats()["by_blueprint"][BP.name]["default_corrupt_entry"] == len(corrupt)
    sdk.close()


def test_no_policy_and_redis_error_reasons(redis_process):
    server = redis_process()
    sdk = _client(server.url, breaker_base_s=60.0)
    assert sdk.get_decision(BP.name, "u1", FEATURES).default_reason == "no_policy"
    server.stop()
    assert sdk.get_decision(BP.name, "u1", FEATURES).default_reason == "redis_error"
    assert sdk.get_decision(BP.name, "u1", FEATURES).default_reason == "circuit_open"
    assert sdk.close(timeout_s=0) == 2


# -- configuration: password, eviction policy ----------------------------------------------


def test_the_password_comes_from_the_environment(redis_process, monkeypatch):
    server = redis_process(password="s3cret-pw")
    _publish(server.client, {"u1": GOOD})
    monkeypatch.setenv("LOOPER_REDIS_PASSWORD", "s3cret-pw")
    sdk = _client(server.url)  # no password argument, none in the URL
    decision = sdk.get_decision(BP.name, "u1", FEATURES)
    assert not decision.is_default and decision.policy_version == "v1"
    assert sdk.close() == 0 and len(_stream(server.client)) == 1


def test_the_demo_traffic_works_against_a_redis_with_a_password(redis_process, monkeypatch, tmp_path):
    import importlib.util

    from looper_common.contracts.blueprint import load_blueprints

    server = redis_process(password="s3cret-pw")
    monkeypatch.setenv("LOOPER_REDIS_PASSWORD", "s3cret-pw")
    spec = importlib.util.spec_from_file_location("looper_demo", ROOT / "scripts" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    from datetime import date

    blueprints = load_blueprints(ROOT / "blueprints")
    simulator = demo.demo_simulator(server.url, blueprints, "notification_send", users=20, seed=3,
                                    start=date(2026, 1, 1), oracle_dir=tmp_path)
    stats = simulator.run_day(0)
    stream = [json.loads(f[b"e"]) for _, f in server.client.xrange(events.stream_key("notification_send"))]
    decisions = [e for e in stream if e["kind"] == "decision"]
    assert len(decisions) == stats.decisions > 0
    # reached Redis (nothing is published; the blueprint's holdback units say so instead)
    assert {e["default_reason"] for e in decisions} <= {"no_policy", "holdback"}
    assert "no_policy" in {e["default_reason"] for e in decisions}


def test_simulate_never_prints_the_password(capsys, caplog):
    from looper_common.simulate import command

    parser = __import__("argparse").ArgumentParser()
    command.add_arguments(parser)
    url = f"redis://looper:hunter2@127.0.0.1:{free_port()}/0"
    args = parser.parse_args(["--blueprint", "notification_send", "--redis-url", url, "--days", "1",
                              "--users", "2", "--blueprints-dir", str(ROOT / "blueprints")])
    assert command.run(args) == 1
    err = capsys.readouterr().err
    assert "cannot reach Redis at redis://looper:***@127.0.0.1" in err
    assert "hunter2" not in err and "hunter2" not in caplog.text


def test_a_redis_that_may_evict_keys_is_refused(redis_process):
    server = redis_process("--maxmemory-policy", "allkeys-lru")
    with pytest.raises(LooperError, match="maxmemory-policy is allkeys-lru.*noeviction"):
        _client(server.url)


def test_volatile_eviction_is_accepted_with_a_warning(redis_process, caplog):
    server = redis_process("--maxmemory-policy", "volatile-lru")
    sdk = _client(server.url)
    assert "maxmemory-policy is volatile-lru" in caplog.text
    assert sdk.get_decision(BP.name, "u1", FEATURES).default_reason == "no_policy"
    sdk.close()


def test_a_redis_that_refuses_config_get_is_used_with_a_warning(redis_process, caplog):
    server = redis_process()
    server.client.execute_command("ACL", "SETUSER", "app", "on", ">app-pw", "~*", "&*", "+@all", "-config")
    sdk = _client(f"redis://app:app-pw@127.0.0.1:{server.port}/0")
    assert "cannot read maxmemory-policy" in caplog.text and "app-pw" not in caplog.text
    assert sdk.get_decision(BP.name, "u1", FEATURES).default_reason == "no_policy"
    sdk.close()


def test_every_client_adds_its_counts_to_the_blueprint_hash(redis_process):
    server = redis_process()
    _publish(server.client, {"u1": GOOD})
    first, second = _client(server.url, stats_interval_s=0.0), _client(server.url, stats_interval_s=0.0)
    first.get_decisions(BP.name, [("u1", FEATURES), ("nobody", FEATURES)])
    second.get_decision(BP.name, "u1", FEATURES)
    second.log_observations(first.get_decision(BP.name, "u1", FEATURES).decision_id, {"click": 1})
    counters = {k.decode(): int(v) for k, v in server.client.hgetall(events.sdk_stats_key(BP.name)).items()}
    assert counters.pop("updated_ms") > 0
    assert counters == {"decisions": 4, "default_unknown_unit": 1, "events_sent": 5}
    assert first.stats()["by_blueprint"] == {BP.name: {"decisions": 3, "default_unknown_unit": 1, "events_sent": 3}}
    first.close()
    second.close()
