"""Traffic scenarios: declared features and types, a valid oracle, a real gap, realistic delays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from looper_common.contracts.blueprint import load_blueprints, parse_blueprint
from looper_common.simulate.scenarios import (
    SCENARIOS,
    FeedLayout,
    NotificationSend,
    PromoOffer,
    Scenario,
    ScenarioError,
    get_scenario,
)
from tests.conftest import ROOT, make_blueprint

BLUEPRINTS = load_blueprints(ROOT / "blueprints")
PY_TYPES = {"float": float, "int": int, "bool": bool, "category": str}


BINARY = sorted(name for name in SCENARIOS if BLUEPRINTS[name].model.task == "binary")


@pytest.fixture(params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> Scenario:
    return get_scenario(BLUEPRINTS[request.param])


@pytest.fixture(params=BINARY)
def binary_scenario(request: pytest.FixtureRequest) -> Scenario:
    """The scenarios of binary objectives, whose oracle is a probability (test_task_worlds: the others)."""
    return get_scenario(BLUEPRINTS[request.param])


def population(scenario: Scenario, n: int = 4000, seed: int = 5) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    return scenario.daily_features(scenario.make_users(n, rng), rng)


def reward_matrix(scenario: Scenario, features: list[dict[str, object]]) -> np.ndarray:
    actions = scenario.blueprint.decision.actions
    return np.array([[scenario.expected_reward(x, a) for a in actions] for x in features])


def test_every_example_blueprint_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(BLUEPRINTS) == {"notification_send", "feed_layout", "promo_offer",
                                                 "watch_minutes", "notification_outcome"}


def test_features_are_exactly_the_declared_ones_with_their_types(scenario: Scenario) -> None:
    specs = scenario.blueprint.features
    features = population(scenario)
    assert len(features) == 4000
    for x in features:
        assert list(x) == [f.name for f in specs]
        for spec in specs:
            assert type(x[spec.name]) is PY_TYPES[spec.type], (spec.name, x[spec.name])
            if spec.type == "float":
                assert math.isfinite(x[spec.name]) and x[spec.name] > 0
            if spec.type == "int":
                assert x[spec.name] >= 0
    for spec in specs:
        if spec.type == "category":
            assert {x[spec.name] for x in features} == set(spec.values)  # every value occurs
        if spec.type == "bool":
            share = np.mean([x[spec.name] for x in features])
            assert 0.2 < share < 0.8


def test_static_traits_stay_and_daily_features_move(scenario: Scenario) -> None:
    rng = np.random.default_rng(1)
    users = scenario.make_users(500, rng)
    day1, day2 = scenario.daily_features(users, rng), scenario.daily_features(users, rng)
    static = set(scenario.categories)
    assert all(a[n] == b[n] for a, b in zip(day1, day2, strict=True) for n in static)
    assert day1 != day2
    again = np.random.default_rng(1)
    assert scenario.daily_features(scenario.make_users(500, again), again) == day1


def test_oracle_is_a_probability_and_dominates_every_action(binary_scenario: Scenario) -> None:
    scenario = binary_scenario
    features = population(scenario, n=2000)
    rewards = reward_matrix(scenario, features)
    assert rewards.min() > 0.0 and rewards.max() < 1.0
    for x, row in zip(features[:200], rewards[:200], strict=True):
        best = scenario.oracle_action(x)
        assert scenario.expected_reward(x, best) == pytest.approx(row.max())
        assert all(scenario.expected_reward(x, best) >= r for r in row)


def test_default_is_clearly_worse_than_the_oracle_and_personalization_pays(
    scenario: Scenario,
) -> None:
    decision = scenario.blueprint.decision
    rewards = reward_matrix(scenario, population(scenario))
    default = rewards[:, decision.actions.index(decision.default_action)].mean()
    oracle = rewards.max(axis=1).mean()
    best_constant = rewards.mean(axis=0).max()
    assert default < 0.75 * oracle and oracle - default > 0.04
    assert best_constant < oracle - 0.01  # no single action is enough: the gap needs features
    best_share = np.bincount(rewards.argmax(axis=1), minlength=len(decision.actions)) / len(rewards)
    assert (best_share >= 0.1).sum() >= 2


def test_sampled_outcomes_agree_with_the_oracle(binary_scenario: Scenario) -> None:
    scenario = binary_scenario
    features = population(scenario, n=300)
    label = scenario.objective
    rng = np.random.default_rng(11)
    n = 20_000
    for x in features[:2]:
        for action in scenario.blueprint.decision.actions:
            u = rng.random((n, len(scenario.delays))).tolist()
            z = rng.standard_normal((n, len(scenario.delays), 2)).tolist()
            hits = sum(
                any(name == label.observation and delay <= label.window_seconds
                    for name, _, delay in scenario.sample_outcomes(x, action, u[i], z[i]))
                for i in range(n)
            )
            p = scenario.expected_reward(x, action)
            assert abs(hits / n - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-3, (x, action)


def test_click_delays_are_hours_with_a_tail_beyond_the_window() -> None:
    click = NotificationSend.delays["click"]
    z = np.random.default_rng(3).standard_normal(50_000)
    hours = np.array([click.seconds(v) for v in z]) / 3600.0
    assert 0.8 < np.median(hours) < 1.25
    beyond_day = (hours > 24).mean()
    assert 0.03 < beyond_day < 0.10
    assert beyond_day == pytest.approx(1 - click.prob_within(86_400), abs=0.005)


def test_notification_effects_are_heterogeneous() -> None:
    sc = get_scenario(BLUEPRINTS["notification_send"])
    lapsed = {"days_since_last_visit": 4.0, "sessions_last_7d": 2, "push_opt_in": True,
              "country": "in", "platform": "android"}
    no_push = {**lapsed, "push_opt_in": False}
    frequent = {**lapsed, "days_since_last_visit": 0.2, "sessions_last_7d": 14}
    assert sc.expected_reward(lapsed, "send") > sc.expected_reward(lapsed, "skip") + 0.3
    assert sc.expected_reward(no_push, "send") < sc.expected_reward(no_push, "skip")
    assert sc.expected_reward(frequent, "send") < sc.expected_reward(frequent, "skip")
    unsub = sc.event_probabilities(frequent, "send")["unsubscribe"]
    assert unsub > 10 * sc.event_probabilities(frequent, "skip")["unsubscribe"]


def test_promo_effects_change_sign_and_personalizing_beats_treating_all_or_none() -> None:
    sc = get_scenario(BLUEPRINTS["promo_offer"])
    assert isinstance(sc, PromoOffer)
    lapsing = {"days_since_purchase": 25.0, "visits_7d": 2, "loyalty_member": False, "segment": "bargain"}
    premium = {**lapsing, "segment": "premium"}
    frequent = {**lapsing, "visits_7d": 10}
    recent = {**lapsing, "days_since_purchase": 1.0}

    def effect(x: dict[str, object]) -> float:
        return sc.expected_reward(x, "treat") - sc.expected_reward(x, "control")

    assert effect(lapsing) > 0.2
    assert effect(premium) < -0.03 and effect(frequent) < effect(lapsing) - 0.05
    assert abs(effect(recent)) < 0.02
    rewards = reward_matrix(sc, population(sc))
    tau = rewards[:, 0] - rewards[:, 1]
    assert 0.3 < (tau > 0.02).mean() < 0.6 and (tau < 0).mean() > 0.15
    cost = sc.blueprint.policy.params["cost"]
    treat_all, treat_none = rewards[:, 0].mean() - cost, rewards[:, 1].mean()
    personalized = np.where(tau > cost, rewards[:, 0] - cost, rewards[:, 1]).mean()
    assert personalized > max(treat_all, treat_none) + 0.015


def test_feed_dwell_is_reported_when_the_engaged_session_ends() -> None:
    sc = get_scenario(BLUEPRINTS["feed_layout"])
    x = {"age_bucket": "18_24", "platform": "ios", "screen_inches": 6.1, "items_viewed_7d": 30}
    assert sc.sample_outcomes(x, "carousel", [0.999], [[0.0, 0.0]]) == []
    engaged, dwell = sc.sample_outcomes(x, "carousel", [0.0], [[0.0, 1.0]])
    assert engaged == ("engagement", 1.0, 600.0)
    seconds = round(45.0 * math.exp(0.8), 1)
    assert dwell == ("dwell_seconds", seconds, 600.0 + seconds)


def test_unknown_or_mismatched_blueprint_is_refused() -> None:
    with pytest.raises(ScenarioError, match="no traffic scenario for blueprint 't_notify'"):
        get_scenario(make_blueprint())
    data = BLUEPRINTS["feed_layout"].model_dump(mode="json")
    data["features"] = data["features"][:-1]
    with pytest.raises(ScenarioError, match="features"):
        FeedLayout(parse_blueprint(data))
    data = BLUEPRINTS["notification_send"].model_dump(mode="json")
    data["labels"][0]["observation"] = "open"
    with pytest.raises(ScenarioError, match="'open' never emitted"):
        NotificationSend(parse_blueprint(data))
