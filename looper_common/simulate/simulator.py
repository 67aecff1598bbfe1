"""Synthetic traffic through the real SDK: decisions, delayed observations, true policy values.

Reproducible: the same seed gives the same users, features, decision times and
outcome draws (numpy, seeded per day); decision ids, and so the exploration draws,
come from the client's ``random_bits``. Build the client with
``LooperClient(url, blueprints=..., random_bits=random.Random(seed).getrandbits)``
and the same seed then yields the same decision ids, actions and observations,
given the same published policy.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np

from looper_common.contracts import events
from looper_common.contracts.blueprint import Blueprint
from looper_common.sdk.client import Decision, LooperClient
from looper_common.simulate.arrival import Arrival
from looper_common.simulate.faults import Faults, drop_entries
from looper_common.simulate.oracle import oracle_path, write_oracle_table
from looper_common.simulate.scenarios import Features, Scenario, get_scenario

DAY_MS = 86_400_000
_USERS_STREAM, _DAY_STREAM = 0, 1


@dataclass(frozen=True, slots=True)
class DayStats:
    """One simulated day; values are expected objectives per decision (the oracle's view).

    The three values are over the decisions outside the blueprint's holdback (the traffic
    the policy serves); the held-back units are served the default by design.
    """

    date: date
    decisions: int
    observations_sent: int
    observations_pending: int  # queued for later days (their ts is after this day)
    served_value: float  # the policy actually served, exploration included
    default_value: float  # always serving the default action
    oracle_value: float  # always serving the best action
    policy_share: float  # share of decisions served by a published policy
    held_back: int = 0  # decisions of holdback units (reason holdback), left out of the values
    new_units: int = 0  # units first seen this day (``Simulator(joining=...)``), outside the holdback
    new_units_served: int = 0  # their decisions served by a published policy, not the default


def day_start_ms(day: date) -> int:
    """Epoch milliseconds of ``day``'s UTC midnight."""
    return int(datetime.combine(day, time(), tzinfo=UTC).timestamp() * 1000)


def served_value(decision: Decision, rewards: dict[str, float]) -> float:
    """True value of the served action distribution: sum_a p(a) * E[reward | a]."""
    return sum(p * rewards[a] for a, p in decision.action_probs.items())


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


class Simulator:
    """Drive one blueprint's scenario through ``client``, one UTC day at a time.

    Args:
        client: the real SDK; seed its ``random_bits`` for reproducible decision ids.
        blueprint: the blueprint to simulate; a scenario must be registered for it.
        users: size of the synthetic population.
        seed: seeds every numpy draw (users, features, times, outcomes).
        start: the UTC date of day 0.
        oracle_dir: when set, each day's oracle table is written under it.
        chunk_size: decisions per ``get_decisions`` call.
        arrival: when observations are sent (lag, outage); default: as soon as due.
        faults: faults to plant on given days (``simulate.faults``); none by default.
        joining: ``(day, count)``: the last ``count`` users are first seen on ``day``
            (0-based) and absent before it: units no batch run has seen.
    """

    def __init__(
        self,
        client: LooperClient,
        blueprint: Blueprint,
        *,
        users: int,
        seed: int,
        start: date,
        oracle_dir: str | Path | None = None,
        chunk_size: int = 2000,
        arrival: Arrival | None = None,
        faults: Faults | None = None,
        joining: tuple[int, int] | None = None,
    ) -> None:
        if users < 1 or seed < 0 or chunk_size < 1:
            raise ValueError("users and chunk_size must be positive and seed non-negative")
        if joining is not None and not (joining[0] >= 0 and 0 <= joining[1] < users):
            raise ValueError(f"joining must be (day >= 0, 0 <= count < users), got {joining}")
        self.joining = joining
        self._batch = frozenset(f.name for f in blueprint.features if f.source == "batch")
        self.client = client
        self.blueprint = blueprint
        self.scenario: Scenario = get_scenario(blueprint)
        self.seed = seed
        self.start = start
        self.oracle_dir = Path(oracle_dir) if oracle_dir is not None else None
        self.chunk_size = chunk_size
        self.arrival = arrival or Arrival()
        self.faults = faults or Faults()
        self.faults.check(blueprint)
        self.unit_ids = [f"u{i:06d}" for i in range(users)]
        self.users = self.scenario.make_users(users, self._rng(_USERS_STREAM))
        # (ts_ms, sequence, decision_id, name, value): a min-heap on delivery time
        self._queue: list[tuple[int, int, str, str, float]] = []
        self._sequence = 0

    @property
    def pending(self) -> int:
        """Observations sampled but not yet sent (their time has not come)."""
        return len(self._queue)

    def run_day(self, day: int) -> DayStats:
        """Serve day ``day`` (0 = ``start``) and send the observations due by its end (after ``arrival``)."""
        the_date = self.start + timedelta(days=day)
        begin = day_start_ms(the_date)
        rng = self._rng(_DAY_STREAM, day)
        features = self.scenario.daily_features(self.users, rng)
        logged = self.faults.features(self.blueprint, day, features)  # what product code sends; the world is as is
        drop_entries(self.client.redis, self.blueprint.name,
                     self.faults.unpublished_units(self.blueprint.name, day, self.unit_ids))
        who, stamps = self._schedule(begin, rng)
        first = self._first_seen(day)
        if first is not None:  # the joiners are absent before their day (the draws stay the same)
            kept = [i for i, w in enumerate(who) if w < first or day >= self.joining[0]]
            who, stamps = [who[i] for i in kept], [stamps[i] for i in kept]
        u = rng.random((len(who), len(self.scenario.delays))).tolist()
        z = rng.standard_normal((len(who), len(self.scenario.delays), 2)).tolist()
        actions = self.blueprint.decision.actions
        default = self.blueprint.decision.default_action
        served, defaults, oracles, rows = [], [], [], []
        published = held = new_units = new_served = 0
        joined = first if first is not None and day == self.joining[0] else None
        for lo in range(0, len(who), self.chunk_size):
            chunk = range(lo, min(lo + self.chunk_size, len(who)))
            requests = [(self.unit_ids[who[i]], self._request(logged[who[i]])) for i in chunk]
            decisions = self.client.get_decisions(
                self.blueprint.name, requests, ts=[stamps[i] for i in chunk]
            )
            for i, decision in zip(chunk, decisions, strict=True):
                x = features[who[i]]
                rewards = self.scenario.rewards(x)
                published += not decision.is_default
                self._queue_outcomes(decision, x, u[i], z[i])
                rows.append((decision.decision_id, decision.unit_id, decision.ts, decision.action,
                             [rewards[a] for a in actions]))
                if decision.default_reason == events.HOLDBACK:
                    held += 1
                    continue
                if joined is not None and who[i] >= joined:  # a unit first seen today (outside the holdback)
                    new_units += 1
                    new_served += not decision.is_default
                served.append(served_value(decision, rewards))
                defaults.append(rewards[default])
                oracles.append(max(rewards.values()))
        sent = self._send_due(self.arrival.cutoff_ms(begin + DAY_MS), lost=self.faults.feedback_stopped(day))
        if self.oracle_dir is not None:
            path = oracle_path(self.oracle_dir, self.blueprint.name, the_date)
            write_oracle_table(path, actions, rows)
        return DayStats(
            date=the_date,
            decisions=len(who),
            observations_sent=sent,
            observations_pending=self.pending,
            served_value=_mean(served),
            default_value=_mean(defaults),
            oracle_value=_mean(oracles),
            policy_share=published / len(who) if who else math.nan,
            held_back=held,
            new_units=new_units,
            new_units_served=new_served,
        )

    def flush_all(self) -> int:
        """Send every observation still queued, whatever its time; returns how many."""
        return self._send_due(None)

    # -- internals -------------------------------------------------------------------

    def _rng(self, *key: int) -> np.random.Generator:
        """An independent numpy stream per purpose (and per day), all from one seed."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def _request(self, features: Features) -> Features:
        """What product code passes: the features but those only the batch side knows (``source: batch``)."""
        if not self._batch:
            return features
        return {k: v for k, v in features.items() if k not in self._batch}

    def _first_seen(self, day: int) -> int | None:
        """Index of the first joining user, or None when nobody joins."""
        if self.joining is None or self.joining[1] == 0:
            return None
        return len(self.unit_ids) - self.joining[1]

    def _schedule(self, begin: int, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        """Who decides when today: user index and epoch-ms time, in time order."""
        n = len(self.unit_ids)
        rate = self.scenario.decisions_per_day
        counts = np.ones(n, dtype=np.int64) if rate is None else rng.poisson(rate, n)
        who = np.repeat(np.arange(n), counts)
        stamps = begin + rng.integers(0, DAY_MS, size=len(who))
        order = np.argsort(stamps, kind="stable")
        return who[order].tolist(), stamps[order].tolist()

    def _queue_outcomes(
        self, decision: Decision, features: Features, u: list[float], z: list[list[float]]
    ) -> None:
        for name, value, delay_s in self.scenario.sample_outcomes(features, decision.action, u, z):
            self._sequence += 1
            due = decision.ts + int(delay_s * 1000)
            heapq.heappush(self._queue, (due, self._sequence, decision.decision_id, name, value))

    def _send_due(self, before_ms: int | None, batch: int = 5000, lost: bool = False) -> int:
        """Send queued observations with ts < ``before_ms`` (all when None), oldest first; ``lost``: drop them."""
        due = []
        while self._queue and (before_ms is None or self._queue[0][0] < before_ms):
            ts, _, decision_id, name, value = heapq.heappop(self._queue)
            due.append((decision_id, {name: value}, ts))
        if lost:
            return 0
        for lo in range(0, len(due), batch):
            self.client.log_observations_batch(due[lo : lo + batch], blueprint=self.blueprint.name)
        return len(due)
