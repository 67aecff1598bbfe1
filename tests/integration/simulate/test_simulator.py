"""The simulator and ``looper simulate`` against a real redis-server."""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, date, datetime

import pyarrow.parquet as pq
import pytest
import redis
import yaml

from looper_common.cli import main
from looper_common.contracts import events, policy_store
from looper_common.contracts.blueprint import load_blueprints
from looper_common.sdk.client import LooperClient
from looper_common.sdk.holdback import in_holdback
from looper_common.simulate import Simulator, get_scenario
from looper_common.simulate.simulator import DAY_MS, day_start_ms
from tests.conftest import ROOT, make_blueprint

BLUEPRINTS = load_blueprints(ROOT / "blueprints")
START = date(2026, 1, 1)
END_OF_DAY_2 = day_start_ms(START) + 2 * DAY_MS


@pytest.fixture
def sim_url(request: pytest.FixtureRequest) -> str:
    """``$LOOPER_TEST_REDIS_URL`` (default: db 3 on port 6395), flushed; else a fresh server."""
    url = os.environ.get("LOOPER_TEST_REDIS_URL", "redis://127.0.0.1:6395/3")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.ConnectionError:
        if "LOOPER_TEST_REDIS_URL" in os.environ:
            pytest.fail(f"LOOPER_TEST_REDIS_URL={url} is not reachable")
        url = request.getfixturevalue("redis_url")  # a throwaway redis-server (conftest)
    redis.Redis.from_url(url).flushdb()
    return url


def simulate(url: str, name: str, *, seed: int = 7, users: int = 300, days: int = 2,
             oracle_dir=None, flush: bool = True):
    client = LooperClient(url, blueprints=BLUEPRINTS, random_bits=random.Random(seed).getrandbits)
    sim = Simulator(client, BLUEPRINTS[name], users=users, seed=seed, start=START,
                    oracle_dir=oracle_dir)
    stats = [sim.run_day(day) for day in range(days)]
    flushed = sim.flush_all() if flush else 0
    return sim, stats, flushed


def stream_events(url: str, name: str) -> tuple[list[dict], list[dict]]:
    entries = redis.Redis.from_url(url).xrange(events.stream_key(name))
    docs = [json.loads(fields[events.PAYLOAD_FIELD.encode()]) for _, fields in entries]
    return ([d for d in docs if d["kind"] == events.DECISION],
            [d for d in docs if d["kind"] == events.OBSERVATION])


def test_two_days_of_traffic_reach_the_stream(sim_url: str) -> None:
    sim, stats, flushed = simulate(sim_url, "notification_send", flush=False)
    decisions, observations = stream_events(sim_url, "notification_send")
    assert [s.date for s in stats] == [date(2026, 1, 1), date(2026, 1, 2)]
    assert [s.decisions for s in stats] == [300, 300] and len(decisions) == 600
    assert len(observations) == sum(s.observations_sent for s in stats) > 10
    assert stats[-1].observations_pending == sim.pending > 0
    # nothing is sent before its time: every observation so far is due by the end of day 2
    assert max(o["ts"] for o in observations) < END_OF_DAY_2
    by_id = {d["decision_id"]: d for d in decisions}
    assert len(by_id) == 600
    for o in observations:
        assert o["name"] in ("click", "unsubscribe") and o["value"] == 1.0
        assert o["ts"] >= by_id[o["decision_id"]]["ts"]
    for stat in stats:
        begin = day_start_ms(stat.date)
        todays = [d for d in decisions if begin <= d["ts"] < begin + DAY_MS]
        assert sorted(d["unit_id"] for d in todays) == [f"u{i:06d}" for i in range(300)]
    exploring = {"send": 0.5, "skip": 0.5}  # exploration.cold_start 1.0: nothing is published yet
    assert all(d["is_default"] and d["action_probs"] == exploring for d in decisions)
    # the day's values are the oracle's view of exactly the decisions served
    scenario = get_scenario(BLUEPRINTS["notification_send"])
    day1 = [d for d in decisions if d["ts"] < day_start_ms(START) + DAY_MS]
    # the values are over the units outside the blueprint's holdback (served the default by design)
    held = [d for d in day1 if d.get("default_reason") == events.HOLDBACK]
    assert held and stats[0].held_back == len(held)
    rewards = [scenario.rewards(d["features"]) for d in day1 if d not in held]
    n = 300 - len(held)
    assert stats[0].default_value == pytest.approx(sum(r["skip"] for r in rewards) / n)
    assert stats[0].oracle_value == pytest.approx(sum(max(r.values()) for r in rewards) / n)
    assert stats[0].served_value == pytest.approx(
        sum(0.5 * r["skip"] + 0.5 * r["send"] for r in rewards) / n)  # cold_start 1.0: uniform
    assert stats[0].policy_share == 0.0
    assert stats[0].oracle_value > stats[0].default_value + 0.02
    pending = sim.pending
    assert sim.flush_all() == pending and sim.pending == 0
    _, after = stream_events(sim_url, "notification_send")
    assert len(after) == len(observations) + pending
    assert min(o["ts"] for o in after[len(observations):]) >= END_OF_DAY_2


def test_same_seed_gives_the_same_traffic(sim_url: str) -> None:
    def run(seed: int) -> tuple[list, list]:
        redis.Redis.from_url(sim_url).flushdb()
        simulate(sim_url, "feed_layout", seed=seed)
        decisions, observations = stream_events(sim_url, "feed_layout")
        served = [(d["decision_id"], d["unit_id"], d["ts"], d["action"], d["features"])
                  for d in decisions]
        return served, [(o["decision_id"], o["name"], o["value"], o["ts"]) for o in observations]

    first, again, other = run(7), run(7), run(8)
    assert len(first[0]) > 400 and len(first[1]) > 100
    assert {a for *_, a, _ in first[0]} == {"grid", "list", "carousel", "compact"}
    assert again == first
    assert {d[0] for d in other[0]}.isdisjoint(d[0] for d in first[0])


def test_published_policy_is_served_and_the_oracle_table_is_written(sim_url, tmp_path) -> None:
    r = redis.Redis.from_url(sim_url)
    for i in range(300):
        r.set(policy_store.entry_key("notification_send", "v1", f"u{i:06d}"),
              policy_store.encode_entry("send", {"send": 0.9, "skip": 0.1}))
    r.set(policy_store.active_key("notification_send"), "v1")
    _, stats, _ = simulate(sim_url, "notification_send", oracle_dir=tmp_path)
    decisions, _ = stream_events(sim_url, "notification_send")
    held = {d["decision_id"] for d in decisions if d.get("default_reason") == events.HOLDBACK}
    assert all(s.policy_share == 1.0 - s.held_back / 300 for s in stats) and held
    assert all(d["policy_version"] == "v1" for d in decisions if d["decision_id"] not in held)
    table = pq.read_table(tmp_path / "notification_send" / "date=2026-01-01.parquet")
    assert table.column_names == [
        "decision_id", "unit_id", "ts", "action", "reward_send", "reward_skip"]
    assert str(table.schema.field("ts").type) == "timestamp[ms, tz=UTC]"
    rows = table.to_pylist()
    assert len(rows) == stats[0].decisions == 300
    scenario = get_scenario(BLUEPRINTS["notification_send"])
    served = {d["decision_id"]: d for d in decisions}
    for row in rows:
        d = served[row["decision_id"]]
        assert (row["unit_id"], row["action"]) == (d["unit_id"], d["action"])
        assert row["ts"] == datetime.fromtimestamp(d["ts"] / 1000, UTC)
        assert row["reward_send"] == pytest.approx(scenario.expected_reward(d["features"], "send"))
    served_rows = [r for r in rows if r["decision_id"] not in held]  # the holdback's units get the default
    value = sum(0.9 * r["reward_send"] + 0.1 * r["reward_skip"] for r in served_rows) / len(served_rows)
    assert stats[0].served_value == pytest.approx(value)
    assert (tmp_path / "notification_send" / "date=2026-01-02.parquet").is_file()


def test_cli_simulate_runs_and_prints_a_row_per_day(sim_url, tmp_path, capsys) -> None:
    code = main(["simulate", "--blueprint", "feed_layout", "--days", "2", "--users", "100",
                 "--seed", "3", "--start-date", "2026-01-01", "--redis-url", sim_url,
                 "--oracle-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line.split() for line in out.splitlines() if line.startswith("2026-")]
    assert [row[0] for row in rows] == ["2026-01-01", "2026-01-02"]
    decisions, observations = stream_events(sim_url, "feed_layout")
    assert sum(int(row[1]) for row in rows) == len(decisions) > 100
    assert float(rows[0][5]) < float(rows[0][6])  # default value below the oracle
    assert "flushed" in out and len(observations) > 0
    assert sorted(p.name for p in (tmp_path / "feed_layout").iterdir()) == [
        "date=2026-01-01.parquet", "date=2026-01-02.parquet"]


def test_cli_refuses_unknown_blueprints_and_blueprints_without_scenario(
    sim_url, tmp_path, capsys
) -> None:
    assert main(["simulate", "--blueprint", "nope", "--redis-url", sim_url]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("looper simulate: error: unknown blueprint 'nope' "
                           "(known: feed_layout, notification_outcome, notification_send, promo_offer, "
                           "watch_minutes)")
    data = make_blueprint().model_dump(mode="json")
    (tmp_path / "t_notify.yaml").write_text(yaml.safe_dump(data))
    code = main(["simulate", "--blueprint", "t_notify", "--redis-url", sim_url,
                 "--blueprints-dir", str(tmp_path), "--oracle-dir", str(tmp_path)])
    assert code == 2
    assert "no traffic scenario for blueprint 't_notify'" in capsys.readouterr().err
    assert main(["simulate", "--blueprint", "feed_layout", "--days", "0"]) == 2
    assert redis.Redis.from_url(sim_url).dbsize() == 0


def test_joining_users_are_absent_before_their_day_and_counted_on_it(sim_url: str) -> None:
    client = LooperClient(sim_url, blueprints=BLUEPRINTS, random_bits=random.Random(5).getrandbits)
    sim = Simulator(client, BLUEPRINTS["notification_send"], users=200, seed=5, start=START, joining=(1, 30))
    first, second = sim.run_day(0), sim.run_day(1)
    assert (first.decisions, first.new_units) == (170, 0)
    joined = [f"u{i:06d}" for i in range(170, 200)]
    held = sum(in_holdback(BLUEPRINTS["notification_send"], u) for u in joined)  # counted as held back instead
    assert (second.decisions, second.new_units) == (200, 30 - held)
    assert second.new_units_served == 0  # nothing is published: the default, for them too
    decided = {d["unit_id"] for d in stream_events(sim_url, "notification_send")[0][:170]}
    assert not decided & set(joined)
    with pytest.raises(ValueError, match="joining"):
        Simulator(client, BLUEPRINTS["notification_send"], users=10, seed=5, start=START, joining=(1, 10))
