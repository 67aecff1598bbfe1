"""The regression and multiclass worlds: outcomes as the labels define them agree with the oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest

from looper_common.contracts.blueprint import load_blueprints, parse_blueprint
from looper_common.contracts.tasks import reward_of_class
from looper_common.simulate.base import ScenarioError
from looper_common.simulate.scenarios import get_scenario
from tests.conftest import ROOT

BLUEPRINTS = load_blueprints(ROOT / "blueprints")


def population(name: str, n: int, seed: int = 5):
    scenario = get_scenario(BLUEPRINTS[name])
    rng = np.random.default_rng(seed)
    return scenario, scenario.daily_features(scenario.make_users(n, rng), rng)


def label_values(scenario, x, action, n, rng) -> np.ndarray:
    """The objective label of ``n`` sampled decisions, aggregated over its window as the join does."""
    label = scenario.objective
    u = rng.random((n, len(scenario.delays))).tolist()
    z = rng.standard_normal((n, len(scenario.delays), 2)).tolist()
    out = np.full(n, label.default)
    for i in range(n):
        seen = [v for name, v, delay in scenario.sample_outcomes(x, action, u[i], z[i])
                if name == label.observation and delay <= label.window_seconds]
        if seen:
            out[i] = sum(seen) if label.aggregation == "sum" else max(seen)
    return out


@pytest.mark.parametrize("name", ["watch_minutes", "notification_outcome"])
def test_sampled_rewards_agree_with_the_oracle(name):
    scenario, features = population(name, 50)
    rng = np.random.default_rng(11)
    n = 20_000
    for x in features[:2]:
        for action in scenario.blueprint.decision.actions:
            values = label_values(scenario, x, action, n, rng)
            rewards = np.array([reward_of_class(scenario.objective, v) for v in values]) \
                if scenario.blueprint.model.task == "multiclass" else values
            expected = scenario.expected_reward(x, action)
            assert abs(rewards.mean() - expected) < 4 * rewards.std() / math.sqrt(n) + 1e-3, (x, action)


def test_watch_minutes_are_numbers_and_the_best_row_depends_on_the_user():
    scenario, features = population("watch_minutes", 3000)
    x = features[0]
    _, minutes, _ = scenario.sample_outcomes(x, "documentary", [0.0], [[0.0, 0.5]])[0]
    habit = math.sqrt(0.5 + x["minutes_7d"] / 120.0)
    assert minutes == pytest.approx(45.0 * scenario.device_minutes[x["device"]] * habit * math.exp(0.2), abs=0.01)
    unfinished = {"age_bucket": "35_54", "device": "tv", "minutes_7d": 120.0, "has_unfinished": True}
    young = {"age_bucket": "18_24", "device": "mobile", "minutes_7d": 120.0, "has_unfinished": False}
    assert scenario.oracle_action(unfinished) == "continue_watching"
    assert scenario.oracle_action(young) == "new_release"
    assert scenario.oracle_action({**young, "age_bucket": "55_plus", "device": "tv"}) == "documentary"


def test_notification_outcomes_are_one_class_each_and_rewards_decide_the_channel():
    scenario, features = population("notification_outcome", 10)
    for x in features:
        for action in scenario.blueprint.decision.actions:
            probs = scenario.class_probabilities(x, action)
            assert sum(probs) == pytest.approx(1.0) and min(probs) > 0
    frequent = {"days_since_last_visit": 0.2, "purchases_30d": 1, "email_opt_in": False, "platform": "ios"}
    buyer = {"days_since_last_visit": 3.0, "purchases_30d": 6, "email_opt_in": True, "platform": "web"}
    lapsed = {"days_since_last_visit": 5.0, "purchases_30d": 0, "email_opt_in": False, "platform": "android"}
    assert scenario.oracle_action(frequent) == "skip"  # a push would make them unsubscribe (-5)
    assert scenario.oracle_action(buyer) == "email"
    assert scenario.oracle_action(lapsed) == "push"
    assert scenario.sample_outcomes(lapsed, "push", [0.999], [[0.0, 0.0]]) == [("notification_outcome", 3.0, 7200.0)]
    assert scenario.sample_outcomes(lapsed, "push", [0.0], [[0.0, 0.0]]) == []  # ignored: nothing observed


def test_a_world_refuses_an_objective_it_has_no_oracle_for():
    data = BLUEPRINTS["watch_minutes"].model_dump(mode="json")
    data["labels"][0]["aggregation"] = "last"
    with pytest.raises(ScenarioError, match="has no oracle: use sum"):
        get_scenario(parse_blueprint(data))
