"""Per task type: what the policy scores, what OPE counts as the reward, and what a blueprint may declare."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from looper_common.contracts.blueprint import BlueprintError
from looper_common.contracts.tasks import reward_of_class
from looper_common.decision_science.evaluation import ope_columns, reward_of
from looper_common.decision_science.policies import choose_actions, policy_frame, policy_scores
from looper_common.decision_science.rewards import expected_reward, label_reward
from tests.conftest import make_blueprint

OUTCOME = {"name": "outcome", "observation": "outcome", "window": "1h", "aggregation": "max",
           "classes": {0: 0.0, 1: 1.0, 2: 6.0, 3: -5.0}}


def multiclass_blueprint(**overrides):
    sections = {"labels": [OUTCOME], "model": {"task": "multiclass"}, "objectives": {"maximize": "outcome"},
                "policy": {"type": "argmax", "exploration": {"type": "epsilon_greedy", "epsilon": 0.2}}}
    return make_blueprint(**{**sections, **overrides})


def regression_blueprint():
    return make_blueprint(model={"task": "regression"}, objectives={"maximize": "revenue"},
                          policy={"type": "argmax", "exploration": {"type": "epsilon_greedy", "epsilon": 0.2}})



def model_input(frame: pd.DataFrame) -> np.ndarray:
    return np.column_stack([frame["visits"].astype(float), (frame["action"] == "send").astype(float)])


class FrameModel:
    """Wraps a fitted estimator so it takes the model frame, as the families' pipelines do."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.classes_ = getattr(estimator, "classes_", None)

    def predict_proba(self, frame):
        return self.estimator.predict_proba(model_input(frame))

    def predict(self, frame):
        return self.estimator.predict(model_input(frame))


def wide(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "unit_id": [f"u{i}" for i in range(n)], "decision_id": [f"d{i}" for i in range(n)],
        "recency": rng.exponential(3.0, n), "visits": rng.integers(0, 20, n).astype(float),
        "opted_in": rng.random(n) < 0.5, "country": rng.choice(["us", "de"], n),
        "action": rng.choice(["send", "skip"], n), "propensity": 0.5,
        "action_probs": [{"send": 0.5, "skip": 0.5}] * n,
    })


def test_multiclass_scores_are_class_probabilities_times_the_declared_rewards():
    bp = multiclass_blueprint()
    frame = wide(600, 1)
    # buying (2) when sent to heavy visitors, unsubscribing (3) when sent to light ones
    send = frame["action"] == "send"
    y = np.where(send, np.where(frame["visits"] >= 10, 2, 3), np.where(frame["visits"] >= 15, 1, 0))
    model = FrameModel(LogisticRegression(max_iter=2000).fit(model_input(frame), y))
    scores = policy_scores(model, frame, bp)
    for k, action in enumerate(bp.decision.actions):
        proba = model.predict_proba(frame.assign(action=action))
        np.testing.assert_allclose(scores[:, k], proba @ np.array([0.0, 1.0, 6.0, -5.0]), atol=1e-12)
    # the policy sends to heavy visitors (a likely purchase) and not to light ones (a likely unsubscribe)
    chosen = np.asarray(bp.decision.actions)[choose_actions(scores, bp)]
    assert (chosen[frame["visits"] >= 14] == "send").all() and (chosen[frame["visits"] <= 5] == "skip").all()
    # the expected class would pick differently: class 3 (unsubscribe) is the largest code
    expected_class = model.predict_proba(frame.assign(action="send")) @ np.arange(4.0)
    assert (expected_class[frame["visits"] <= 5] > 2.5).all()
    assert set(policy_frame(model, frame, bp).columns) == {"unit_id", "action", "score_send", "score_skip"}


def test_multiclass_logged_reward_is_the_reward_of_the_class_that_happened():
    bp = multiclass_blueprint()
    frame = wide(4, 2).assign(outcome=[0.0, 1.0, 2.0, 3.0])
    assert reward_of(frame, bp, "outcome").tolist() == [0.0, 1.0, 6.0, -5.0]
    assert np.isnan(label_reward(bp, "outcome", np.array([7.0]))).all()  # undeclared: no reward
    spec = bp.labels[0]
    assert reward_of_class(spec, 2) == 6.0 and np.isnan(reward_of_class(spec, 9))
    with pytest.raises(ValueError, match=r"class\(es\) \[7\]"):
        expected_reward(np.ones((1, 2)) / 2, np.array([0, 7]), spec)
    # without classes a class is worth its code
    plain = multiclass_blueprint(labels=[{**OUTCOME, "classes": None}])
    assert reward_of(frame, plain, "outcome").tolist() == [0.0, 1.0, 2.0, 3.0]


def test_ope_columns_use_the_task_reward_and_the_task_scores():
    bp = multiclass_blueprint()
    frame = wide(400, 3)
    frame["outcome"] = np.where(frame["action"] == "send", 2.0, 0.0)
    frame.loc[frame.index[:50], "outcome"] = 3.0
    model = FrameModel(LogisticRegression(max_iter=2000).fit(model_input(frame), frame["outcome"]))
    columns = ope_columns(frame, bp, {"model": (model, None)}, reward_model=model, label="outcome")
    assert columns["reward"].tolist() == reward_of(frame, bp, "outcome").tolist()
    assert set(np.unique(columns["reward"])) == {0.0, 6.0, -5.0}
    np.testing.assert_allclose(columns["q_hat"], policy_scores(model, frame, bp), atol=1e-12)


def test_regression_scores_are_the_predicted_values_and_the_reward_the_value():
    bp = regression_blueprint()
    frame = wide(800, 4)
    send = (frame["action"] == "send").to_numpy()
    frame["revenue"] = np.where(send, 2.0 * frame["visits"] - 10.0, 5.0)
    model = FrameModel(HistGradientBoostingRegressor(random_state=0).fit(model_input(frame), frame["revenue"]))
    scores = policy_scores(model, frame, bp)
    np.testing.assert_allclose(scores[:, 0], model.predict(frame.assign(action="send")), atol=1e-12)
    chosen = np.asarray(bp.decision.actions)[choose_actions(scores, bp)]
    assert (chosen[frame["visits"] >= 10] == "send").all() and (chosen[frame["visits"] <= 5] == "skip").all()
    assert reward_of(frame, bp, "revenue").tolist() == frame["revenue"].tolist()  # not cut to 0/1


def test_classes_are_validated_against_the_task_and_the_default():
    with pytest.raises(BlueprintError, match="labels.outcome.classes: only a multiclass task"):
        make_blueprint(labels=[OUTCOME], objectives={"maximize": "outcome"})
    with pytest.raises(BlueprintError, match="needs at least 2 classes"):
        multiclass_blueprint(labels=[{**OUTCOME, "classes": {0: 0.0}}])
    with pytest.raises(BlueprintError, match="default 9 is not one of its classes"):
        multiclass_blueprint(labels=[{**OUTCOME, "default": 9}])
    assert multiclass_blueprint().labels[0].classes == {0: 0.0, 1: 1.0, 2: 6.0, 3: -5.0}
