"""Policy tuning on the simulator: the tuned policy's TRUE value beats the blueprint's params."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from looper_common.contracts.blueprint import load_blueprint
from looper_common.decision_science.policies import policy_scores, target_probabilities
from looper_common.decision_science.policy_tuning import pareto_figure, tune
from looper_common.simulate.scenarios import get_scenario
from looper_common.training.examples import to_model_frame
from looper_common.training.families import build_model
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
BLUEPRINT = load_blueprint(ROOT / "blueprints" / "notification_send.yaml")
SCENARIO = get_scenario(BLUEPRINT)
ACTIONS = list(BLUEPRINT.decision.actions)


def contexts(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Users' features (wide columns) and their true click probability under each action."""
    rng = np.random.default_rng(seed)
    features = SCENARIO.daily_features(SCENARIO.make_users(n, rng), rng)
    truth = np.array([[SCENARIO.event_probabilities(f, a)["click"] for a in ACTIONS] for f in features])
    wide = pd.DataFrame(features)
    wide["unit_id"] = [f"u{seed}-{i}" for i in range(n)]
    wide["decision_id"] = [f"d{seed}-{i}" for i in range(n)]
    return wide, truth


def logged(n: int, seed: int) -> pd.DataFrame:
    """Day-one traffic: the default (skip) with epsilon 0.2, clicks drawn from the truth."""
    wide, truth = contexts(n, seed)
    rng = np.random.default_rng(seed + 1)
    probs = np.tile([0.1, 0.9], (n, 1))
    action = (rng.random(n) >= probs[:, 0]).astype(int)
    rows = np.arange(n)
    wide["action"] = np.asarray(ACTIONS)[action]
    wide["propensity"] = probs[rows, action]
    wide["action_probs"] = [{"send": 0.1, "skip": 0.9}] * n
    wide["clicked"] = (rng.random(n) < truth[rows, action]).astype(float)
    wide["unsubscribed"] = 0.0
    return wide


def true_value(model: object, params: dict, population: pd.DataFrame, truth: np.ndarray) -> tuple[float, float]:
    """The oracle's value of serving the policy with ``params``, and its sends per unit."""
    probs = target_probabilities(policy_scores(model, population, BLUEPRINT, params), BLUEPRINT, params)
    return float((probs * truth).sum(axis=1).mean()), float(probs[:, 0].mean())


def test_tuned_policy_truly_beats_the_untuned_one():
    train = logged(6000, seed=1)
    categorical = [f.name for f in BLUEPRINT.features if f.type == "category"] + ["action"]
    numeric = [f.name for f in BLUEPRINT.features if f.type != "category"]
    model = build_model({"family": "hist_gbdt", "learning_rate": 0.1, "max_leaf_nodes": 16,
                         "min_samples_leaf": 40, "l2_regularization": 0.01}, "binary", categorical, numeric)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(to_model_frame(train, BLUEPRINT), train["clicked"].astype(int))

    holdout = logged(4000, seed=2)
    trials_seen = []
    result = tune(holdout, BLUEPRINT, {"clicked": model}, seed=7, n_bootstrap=50,
                  on_trial=trials_seen.append)
    assert len(result.trials) == len(trials_seen) == BLUEPRINT.policy.tuning.max_evals
    assert result.tuned and set(result.params) == {"threshold", "epsilon"}
    low, high = BLUEPRINT.policy.tuning.explore
    assert low <= result.params["epsilon"] <= high
    chosen = next(t for t in result.trials if t.params == result.params)
    assert chosen.feasible and chosen.guardrails["sends_per_unit"] <= 0.6

    population, truth = contexts(20_000, seed=3)
    tuned_value, tuned_sends = true_value(model, result.params, population, truth)
    untuned_value, _ = true_value(model, dict(BLUEPRINT.policy.params), population, truth)
    assert tuned_value > untuned_value, (result.params, tuned_value, untuned_value)
    assert tuned_sends <= 0.6 + 0.02  # the guardrail holds on fresh users too (up to sampling)
    # the OPE table behind the choice: tuned vs untuned vs logged, with a paired lift
    evaluation = result.evaluation
    assert set(evaluation.policies) == {"tuned", "untuned", "logged"}
    assert evaluation.lifts["tuned"]["dr"].value > 0
    assert pareto_figure(result, BLUEPRINT).axes[0].get_xlabel() == "sends_per_unit"


def test_guardrail_that_nothing_meets_keeps_the_blueprint_params():
    strict = BLUEPRINT.model_copy(update={"objectives": BLUEPRINT.objectives.model_copy(
        update={"guardrails": [BLUEPRINT.objectives.guardrails[0].model_copy(update={"max": 0.001})]})})
    holdout = logged(1500, seed=4)
    model = build_model({"family": "logistic", "C": 1.0, "interactions": True}, "binary",
                        ["country", "platform", "action"], ["days_since_last_visit", "sessions_last_7d",
                                                            "push_opt_in"])
    model.fit(to_model_frame(holdout, BLUEPRINT), holdout["clicked"].astype(int))
    result = tune(holdout, strict, {"clicked": model}, max_evals=4, seed=1, n_bootstrap=20)
    assert not result.tuned and result.params == dict(BLUEPRINT.policy.params)
    assert "guardrails" in result.notes[0]
