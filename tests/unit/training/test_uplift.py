"""Uplift learners recover a planted effect, predict per action, round-trip through skops; the uplift policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io

from looper_common.decision_science.policies import choose_actions
from looper_common.training.uplift import LEARNERS, UpliftLearner, build_learner, pehe
from tests.conftest import make_blueprint

ACTIONS = ("treat", "control")


def planted(n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Model frame, outcome, logged propensity and true effect; assignment P(treat) is 0.25 or 0.75."""
    rng = np.random.default_rng(seed)
    segment = rng.choice(["a", "b", "c"], n)
    x = rng.random(n)
    p_treat = np.where(segment == "a", 0.75, 0.25)  # depends on x: the propensities matter
    treated = rng.random(n) < p_treat
    tau = np.where(segment == "a", 0.3 * x, np.where(segment == "c", -0.1, 0.0))
    y = (rng.random(n) < 0.15 + 0.1 * x + treated * tau).astype(float)
    frame = pd.DataFrame({"segment": segment, "x": x, "action": np.where(treated, *ACTIONS)})
    return frame, y, np.where(treated, p_treat, 1.0 - p_treat), tau


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_learner_recovers_the_planted_effect(name: str, data) -> None:
    frame, y, propensity, tau = data
    model = build_learner(name, ACTIONS, "binary", ["segment"], ["x"]).fit(frame, y, propensity)
    tau_hat = model.predict_uplift(frame)
    # 4000 noisy 0/1 outcomes: well short of exact, well clear of a constant effect
    assert pehe(tau_hat, tau) < 0.8 * pehe(np.full(len(tau), tau.mean()), tau)
    assert np.corrcoef(tau_hat, tau)[0, 1] > 0.6
    by_segment = pd.Series(tau_hat).groupby(frame["segment"].to_numpy()).mean()  # true: 0.15, 0, -0.1
    assert by_segment["a"] > 0.08 and by_segment["c"] < 0.0 and by_segment["a"] > by_segment["c"] + 0.1
    # the outcome under the row's action is mu0 + [treated] * tau, whatever the served action
    treat, control = frame.assign(action="treat"), frame.assign(action="control")
    np.testing.assert_allclose(model.predict_outcome(control), model.predict_control(frame))
    np.testing.assert_allclose(model.predict_outcome(treat) - model.predict_outcome(control), tau_hat, atol=1e-12)
    proba = model.predict_proba(frame)
    assert proba.shape == (len(frame), 2) and proba.min() >= 0.0 and proba.max() <= 1.0
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(model.classes_) == [0, 1]


def test_learners_refuse_what_they_cannot_fit(data) -> None:
    frame, y, propensity, _ = data
    model = build_learner("t", ACTIONS, "binary", ["segment"], ["x"])
    with pytest.raises(ValueError, match="neither"):
        model.fit(frame.assign(action="maybe"), y, propensity)
    with pytest.raises(ValueError, match="treatment rows"):
        model.fit(frame.assign(action="control"), y, propensity)
    with pytest.raises(ValueError, match="single outcome class"):
        model.fit(frame, np.zeros(len(y)), propensity)
    with pytest.raises(ValueError, match="binary and regression"):
        build_learner("t", ACTIONS, "multiclass", ["segment"], ["x"]).fit(frame, y, propensity)
    with pytest.raises(ValueError, match="unknown uplift learner"):
        build_learner("z", ACTIONS, "binary", ["segment"], ["x"])


def test_regression_outcomes_and_uniform_assignment_without_propensities() -> None:
    frame, _, _, tau = planted(n=3000, seed=2)
    rng = np.random.default_rng(3)
    revenue = 5.0 + 10.0 * (frame["action"] == "treat") * tau + rng.normal(0.0, 0.5, len(frame))
    model = build_learner("x", ACTIONS, "regression", ["segment"], ["x"]).fit(frame, revenue)
    assert pehe(model.predict_uplift(frame), 10.0 * tau) < 0.5 * pehe(np.full(len(tau), 10 * tau.mean()), 10 * tau)
    np.testing.assert_allclose(model.predict(frame.assign(action="control")), model.predict_control(frame))


def test_a_fitted_learner_round_trips_through_skops_with_its_own_trusted_types(data) -> None:
    frame, y, propensity, _ = data
    model = build_learner("dr", ACTIONS, "binary", ["segment"], ["x"]).fit(frame, y, propensity)
    blob = skops.io.dumps(model)
    trusted = skops.io.get_untrusted_types(data=blob)  # what training.register_model records
    assert "looper_common.training.uplift.DRLearner" in trusted
    loaded = skops.io.loads(blob, trusted=trusted)
    assert isinstance(loaded, UpliftLearner)
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))


def test_uplift_policy_treats_when_the_effect_exceeds_the_cost() -> None:
    blueprint = make_blueprint(
        decision={"actions": ["treat", "control"], "default_action": "control"},
        policy={"type": "uplift", "params": {"cost": 0.02}},
    )
    scores = np.array([[0.30, 0.20], [0.25, 0.24], [0.10, 0.20], [0.22, 0.20]])
    # effects 0.10, 0.01, -0.10, 0.02 (not above the cost)
    np.testing.assert_array_equal(choose_actions(scores, blueprint), [0, 1, 1, 1])
    np.testing.assert_array_equal(choose_actions(scores, blueprint, {"cost": 0.0}), [0, 0, 1, 0])
