"""Late feedback, end to end: the simulator with an arrival lag and an outage, ingestion, the join day by day.

Every observation sent is accounted for, to the event: inside an example, counted late
after its day's join (``late_after_join``), or classified by its own day's outcome
(after the window, before the decision); with ``late_feedback: relabel`` the late ones
are written into their examples and a rerun changes nothing more.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
import yaml

from looper_common.contracts import events
from looper_common.contracts.blueprint import parse_blueprint
from looper_common.ingest.streams import ingest_events
from looper_common.labels.join import join_feedback
from looper_common.labels.late import horizon
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, JOIN_STATS, SILVER_EXAMPLES
from looper_common.sdk.client import LooperClient
from looper_common.simulate import Simulator
from looper_common.simulate.arrival import Arrival
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
NAME = "notification_send"
START = date(2026, 3, 1)
DAYS = 4
# feedback arrives 3 h after it happens; nothing at all from Mar 2 06:00 to Mar 3 06:00
ARRIVAL = Arrival(lag=timedelta(hours=3),
                  outage=(datetime(2026, 3, 2, 6, tzinfo=UTC), datetime(2026, 3, 3, 6, tzinfo=UTC)))
LAST_RUN = START + timedelta(days=DAYS)  # every decision of the simulated days has matured by then


def _blueprint(late_feedback: str):
    data = yaml.safe_load((ROOT / "blueprints" / f"{NAME}.yaml").read_text())
    return parse_blueprint({**data, "late_feedback": late_feedback}, NAME)


def _expected(lake, blueprint) -> tuple[Counter, Counter, int]:
    """From bronze, in plain Python: in-window observations per (maturity date, label), outcomes per date."""
    window = {lb.observation: (lb.name, timedelta(seconds=lb.window_seconds)) for lb in blueprint.labels}
    longest = max(w for _, w in window.values())
    decisions = {r["decision_id"]: r["ts"] for r in lake.read(BRONZE_DECISIONS).table.to_pylist()}
    in_window, outcomes, last_days = Counter(), Counter(), 0
    for obs in lake.read(BRONZE_OBSERVATIONS).table.to_pylist():
        decided = decisions[obs["decision_id"]]
        label, span = window[obs["name"]]
        delay = obs["ts"] - decided
        if timedelta(0) <= delay <= span:
            matured = (decided + longest - timedelta(microseconds=1)).date()  # (start, end] of its run date
            in_window[(matured, label)] += 1
        elif obs["date"] > LAST_RUN:
            last_days += 1  # classified by its own day's join, which has not run yet
        else:
            outcomes[(obs["date"], "late" if delay > span else "early")] += 1
    return in_window, outcomes, last_days


def _tables(lake) -> dict[str, list[str]]:
    return {t.name: sorted(json.dumps(r, default=str, sort_keys=True) for r in lake.read(t).table.to_pylist())
            for t in (SILVER_EXAMPLES, JOIN_STATS)}


def test_every_observation_sent_is_in_an_example_or_counted_late(lake, redis_client, redis_url):
    count = _blueprint("count")
    assert horizon(count, LAST_RUN) == (LAST_RUN - timedelta(days=7), LAST_RUN - timedelta(days=1))
    client = LooperClient(redis_url, blueprints={NAME: count}, random_bits=random.Random(5).getrandbits)
    simulator = Simulator(client, count, users=1500, seed=5, start=START, arrival=ARRIVAL)
    stream = [events.stream_key(NAME)]
    sent = []
    for day in range(DAYS):  # a day is simulated, ingested and joined before the next: what arrives later is late
        sent.append(simulator.run_day(day).observations_sent)
        client.flush()
        ingest_events(redis_client, lake, {NAME: count}, streams=stream)
        join_feedback(lake, count, START + timedelta(days=day))
    assert sent[0] > 0 and sent[1] == 0 and sent[2] > sent[0]  # the outage held all back, then it came at once
    sent.append(simulator.flush_all())
    client.flush()
    ingest_events(redis_client, lake, {NAME: count}, streams=stream)
    join_feedback(lake, count, LAST_RUN)

    observations = lake.read(BRONZE_OBSERVATIONS).table.num_rows
    assert observations == sum(sent) > 200  # every observation sent reached bronze, once
    in_window, outcomes, pending = _expected(lake, count)
    rows = {r["date"]: r for r in lake.read(JOIN_STATS).table.to_pylist()}
    assert sorted(rows) == [START + timedelta(days=d) for d in range(DAYS + 1)]
    examples = Counter()
    for r in lake.read(SILVER_EXAMPLES, columns=["date", "label", "n_observations"]).table.to_pylist():
        examples[(r["date"], r["label"])] += r["n_observations"]
    late = Counter({(day, label): n for day, r in rows.items() for label, n in r["late_after_join"]})
    # to the event, per day and label: in an example, or counted late after that day's join
    assert examples + late == in_window
    # the outage (Mar 2 06:00 to Mar 3 06:00) held back most of Mar 2's feedback until after its join
    assert sum(late.values()) > 20 and late[(START + timedelta(days=1), "clicked")] > 10
    for day, r in rows.items():
        assert (r["late_observations"], r["early_observations"], r["orphan_observations"]) == (
            outcomes[(day, "late")], outcomes[(day, "early")], 0)
    lost = observations - sum(examples.values()) - sum(late.values()) - sum(outcomes.values()) - pending
    assert lost == 0
    before = _tables(lake)
    join_feedback(lake, count, LAST_RUN)  # counts are state, not increments: a rerun adds nothing
    assert _tables(lake) == before
    print(f"\nlate feedback (count): sent {observations}, in examples {sum(examples.values())}, "
          f"late after the join {sum(late.values())}, outside the window {sum(outcomes.values())}, "
          f"dated after the last run {pending}, lost {lost}")

    # relabel: the next run writes the late observations into their examples, once
    relabel = _blueprint("relabel")
    join_feedback(lake, relabel, LAST_RUN)
    rows = {r["date"]: r for r in lake.read(JOIN_STATS).table.to_pylist()}
    assert all(n == 0 for r in rows.values() for _, n in r["late_after_join"])
    relabelled = Counter({(day, label): n for day, r in rows.items() for label, n in r["relabelled_after_join"]})
    assert +relabelled == +late
    examples = Counter()
    for r in lake.read(SILVER_EXAMPLES, columns=["date", "label", "n_observations"]).table.to_pylist():
        examples[(r["date"], r["label"])] += r["n_observations"]
    assert examples == in_window
    before = _tables(lake)
    join_feedback(lake, relabel, LAST_RUN)
    assert _tables(lake) == before
    print(f"late feedback (relabel): relabelled {sum(relabelled.values())}, in examples {sum(examples.values())}")
