"""A randomized experiment's logs as a file: what ``looper import-logs`` reads (docs/import-logs.md).

Each simulated user gets one decision a day with an action drawn uniformly at random
(propensity ``1 / len(actions)``); the scenario's hidden response model draws the
observations (import-logs dates each one second after its decision). The rows have the columns of the
import schema: ``decision_id``, ``unit``, ``timestamp``, ``feature_<name>``, ``action``,
``propensity``, ``action_probs`` and ``obs_<name>`` (1 when it arrived, empty when not).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa

from looper_common.contracts.blueprint import Blueprint
from looper_common.simulate.scenarios import get_scenario


def randomized_sample(blueprint: Blueprint, *, users: int, days: int, start: date, seed: int = 0) -> pa.Table:
    """``users`` x ``days`` logged decisions of a uniform random policy for ``blueprint``."""
    scenario = get_scenario(blueprint)
    rng = np.random.default_rng(seed)
    population = scenario.make_users(users, rng)
    actions = list(blueprint.decision.actions)
    probability = 1.0 / len(actions)
    rows = []
    for day in range(days):
        midnight = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=day)
        for i, features in enumerate(scenario.daily_features(population, rng)):
            action = actions[int(rng.integers(len(actions)))]
            events = scenario.event_probabilities(features, action)
            ts = midnight + timedelta(hours=8, seconds=int(rng.integers(0, 8 * 3600)))
            row = {"decision_id": f"sample-{day:03d}-{i:06d}", "unit": f"u{i}", "timestamp": ts.isoformat(),
                   **{f"feature_{k}": v for k, v in features.items()}, "action": action,
                   "propensity": probability, "action_probs": json.dumps({a: probability for a in actions})}
            for name, p in events.items():
                row[f"obs_{name}"] = 1 if rng.random() < p else None
            rows.append(row)
    return pa.Table.from_pylist(rows)
