"""A batch's events sent in parts, each written by Redis while the next is decided.

``get_decisions`` of 200 or more requests on one Redis starts each part's script call
without waiting and reads its reply after deciding the next part. The decisions, the
events and the counts must be what one blocking send gives, and a part Redis refuses
must be kept as a blocking send keeps a batch.
"""

from __future__ import annotations

import json
import random

import pytest
import redis

from looper_common.contracts import events, policy_store
from looper_common.sdk.client import LooperClient
from looper_common.sdk.outbox import MIN_PART
from tests.conftest import FEATURES, make_blueprint

pytestmark = pytest.mark.integration

BP = make_blueprint(holdback={"share": 0.1})
STREAM = events.stream_key(BP.name)
N = 1_000


def _client(url: str, seed: int = 7, **kwargs) -> LooperClient:
    return LooperClient(url, blueprints={BP.name: BP}, random_bits=random.Random(seed).getrandbits,
                        pointer_ttl_s=0.0, socket_timeout=2.0, **kwargs)


def _publish(client: redis.Redis) -> None:
    client.set(policy_store.active_key(BP.name), "v1")
    pipe = client.pipeline(transaction=False)
    for i in range(0, N, 3):  # a third of the units known: defaults and served decisions mixed
        pipe.set(policy_store.entry_key(BP.name, "v1", f"u{i}"), policy_store.encode_entry(
            "send" if i % 2 else "skip", {"send": i / N, "skip": 1 - i / N}))
    pipe.execute()


def _requests(n: int = N) -> list[tuple[str, dict]]:
    return [(f"u{i}", {**FEATURES, "visits": i}) for i in range(n)]


def _stream(client: redis.Redis) -> list[bytes]:
    return [f[events.PAYLOAD_FIELD.encode()] for _, f in client.xrange(STREAM)]


def _script_calls(client: redis.Redis) -> int:
    """Script calls Redis has seen (``calls`` includes those that failed), rejected ones too."""
    entry = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(entry.get("calls", 0)) + int(entry.get("rejected_calls", 0))


def test_a_batch_in_parts_gives_the_decisions_and_events_of_one_blocking_send(redis_url, redis_client):
    _publish(redis_client)
    LooperClient(redis_url, blueprints={BP.name: BP}).get_decision(BP.name, "u0", FEATURES)  # loads the script
    redis_client.delete(STREAM)
    sdk = _client(redis_url)
    assert len(sdk._outbox.part_sizes(N)) > 1 and sdk._outbox.part_sizes(2 * MIN_PART - 1) == [2 * MIN_PART - 1]
    before = _script_calls(redis_client)
    decisions = sdk.get_decisions(BP.name, _requests(), ts=1_765_000_000_000)
    assert _script_calls(redis_client) - before == len(sdk._outbox.part_sizes(N))
    sent = _stream(redis_client)

    # the same steps by hand, one part and no I/O after the MGET: the reference
    ref = _client(redis_url)
    compiled, stamps = ref.check_decisions(BP.name, _requests(), 1_765_000_000_000)
    step = ref.lookup(compiled, _requests())
    expected, payloads = ref.decide_from(step, _requests(), stamps, redis_client.mget(step.keys))
    assert decisions == expected
    assert sent == payloads
    assert {d.default_reason for d in decisions} == {None, "unknown_unit", "holdback"}
    stats = sdk.stats()
    assert stats["events_sent"] == N and stats["events_buffered"] == 0 and stats["failed_sends"] == 0
    assert stats["by_blueprint"][BP.name]["decisions"] == N
    sdk.close()
    ref.close()


def test_a_refused_part_is_kept_with_the_rest_of_its_batch_and_resent_in_order(redis_url, redis_client):
    _publish(redis_client)
    redis_client.set(STREAM, "not a stream")  # every XADD to it: WRONGTYPE
    sdk = _client(redis_url)
    before = _script_calls(redis_client)
    decisions = sdk.get_decisions(BP.name, _requests())
    assert _script_calls(redis_client) - before == 1  # the first part refused, the others kept untried
    stats = sdk.stats()
    assert stats["events_buffered"] == N and stats["events_sent"] == 0 and stats["failed_sends"] == 1
    assert stats["circuit"] == "closed" and stats["writes_circuit"] == "closed"  # one bad key is no outage
    redis_client.delete(STREAM)
    assert sdk.flush() == 0
    assert [json.loads(p)["decision_id"] for p in _stream(redis_client)] == [d.decision_id for d in decisions]
    assert sdk.stats()["events_sent"] == N
    sdk.close()


def test_refused_writes_open_the_writes_circuit_once_and_nothing_is_lost(redis_process):
    server = redis_process("--maxmemory-policy", "noeviction")
    _publish(server.client)
    sdk = _client(server.url, breaker_base_s=60.0, breaker_max_s=60.0)
    server.client.config_set("maxmemory", 1)  # every write refused: OOM
    first = sdk.get_decisions(BP.name, _requests())
    second = sdk.get_decisions(BP.name, _requests())
    stats = sdk.stats()
    assert stats["writes_circuit"] == "open" and stats["writes_circuit_opened"] == 1 and stats["failed_sends"] == 1
    assert stats["events_buffered"] == 2 * N and stats["events_sent"] == 0
    server.client.config_set("maxmemory", 0)
    assert sdk.close() == 0
    sent = [json.loads(p)["decision_id"] for p in _stream(server.client)]
    assert sent == [d.decision_id for d in first + second]


def test_a_flushed_script_is_loaded_again_without_a_failed_send(redis_url, redis_client):
    _publish(redis_client)
    sdk = _client(redis_url)
    sdk.get_decisions(BP.name, _requests())
    redis_client.script_flush()  # as after a restart of Redis: NOSCRIPT for every started part
    sdk.get_decisions(BP.name, _requests())
    stats = sdk.stats()
    assert stats["events_sent"] == 2 * N and stats["failed_sends"] == 0 and stats["events_buffered"] == 0
    assert len(_stream(redis_client)) == 2 * N
    sdk.close()


def test_a_part_whose_connection_drops_is_written_again_not_lost(redis_url, redis_client):
    sdk = _client(redis_url)
    payloads = [f'{{"n":{i}}}'.encode() for i in range(3 * MIN_PART)]
    parts = [payloads[:MIN_PART], payloads[MIN_PART:2 * MIN_PART], payloads[2 * MIN_PART:]]
    before = _script_calls(redis_client)

    def made() -> list[bytes]:
        for i, part in enumerate(parts):
            if i == 1:  # the first part is out, held by the pause (a script may write): drop its connection
                redis_client.client_kill_filter(_type="normal", skipme=True)
                redis_client.execute_command("CLIENT", "UNPAUSE")
            yield part

    redis_client.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
    sdk._outbox.send_parts(STREAM, made())
    stats = sdk.stats()
    assert stats["events_sent"] == len(payloads) and stats["failed_sends"] == 0 and stats["events_buffered"] == 0
    assert _stream(redis_client) == payloads  # the dropped part went again the blocking way, once
    assert _script_calls(redis_client) - before == len(parts)  # the killed call never ran
    sdk.close()


def test_a_batch_is_written_when_get_decisions_returns(redis_url, redis_client):
    _publish(redis_client)
    sdk = _client(redis_url)
    for _ in range(3):
        decisions = sdk.get_decisions(BP.name, _requests())
        assert [json.loads(p)["decision_id"] for p in _stream(redis_client)[-N:]] == [d.decision_id for d in decisions]
    sdk.close()
