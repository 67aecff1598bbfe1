"""The vectorized policy distribution OPE evaluates is exactly what the SDK serves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from looper_common.contracts.blueprint import ExplorationSpec
from looper_common.decision_science.policies import action_probabilities, choose_actions, exploration_spec
from looper_common.sdk.exploration import action_distribution
from tests.conftest import make_blueprint

ACTIONS = ["a", "b", "c"]
SPECS = [
    ExplorationSpec(type="epsilon_greedy", epsilon=0.3),
    ExplorationSpec(type="epsilon_greedy", epsilon=0.0, floor=0.05),
    ExplorationSpec(type="softmax", temperature=0.5),
    ExplorationSpec(type="softmax", temperature=0.05, floor=0.1),
    ExplorationSpec(type="none"),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.type}-{s.epsilon}-{s.temperature}-{s.floor}")
def test_action_probabilities_match_the_sdk(spec):
    rng = np.random.default_rng(0)
    scores = rng.random((200, 3))
    greedy = np.argmax(scores, axis=1)
    matrix = action_probabilities(scores, greedy, spec)
    for row, g, probs in zip(scores, greedy, matrix, strict=True):
        sdk = action_distribution(spec, ACTIONS, ACTIONS[g], dict(zip(ACTIONS, row.tolist(), strict=True)))
        assert probs == pytest.approx([sdk[a] for a in ACTIONS], abs=1e-12)
    assert matrix.sum(axis=1) == pytest.approx(np.ones(200))
    assert matrix.min() >= min(spec.floor, 1 / 3) - 1e-12


def test_tuned_params_override_policy_and_exploration():
    bp = make_blueprint(policy={"type": "argmax", "params": {"offsets": {"send": 0.0}},
                                "exploration": {"type": "epsilon_greedy", "epsilon": 0.2}})
    scores = np.array([[0.3, 0.5], [0.6, 0.1]])
    assert choose_actions(scores, bp).tolist() == [1, 0]
    assert choose_actions(scores, bp, {"offsets": {"send": 0.25}}).tolist() == [0, 0]
    assert exploration_spec(bp, {"epsilon": 0.05, "threshold": 0.3}).epsilon == 0.05
    assert exploration_spec(bp).epsilon == 0.2


def test_weighted_sum_combines_the_labels_models():
    from sklearn.linear_model import LogisticRegression

    from looper_common.decision_science.policies import policy_frame, policy_labels, policy_scores, score_actions

    bp = make_blueprint(policy={"type": "weighted_sum", "params": {"weights": {"clicks": -0.5}}})
    assert policy_labels(bp) == ["clicked", "clicks"]
    rng = np.random.default_rng(0)
    wide = pd.DataFrame({
        "recency": rng.random(80), "visits": rng.integers(0, 9, 80), "opted_in": rng.random(80) < 0.5,
        "country": rng.choice(["us", "de"], 80), "unit_id": [f"u{i}" for i in range(80)],
    })

    class Numeric(LogisticRegression):  # a model over the numeric columns and the action
        def fit(self, frame, y):
            return super().fit(self._x(frame), y)

        def predict_proba(self, frame):
            return super().predict_proba(self._x(frame))

        @staticmethod
        def _x(frame):
            return np.column_stack([frame["recency"], frame["visits"], frame["action"] == "send"])

    from looper_common.training.examples import to_model_frame

    frame = to_model_frame(wide.assign(action=np.where(rng.random(80) < 0.5, "send", "skip")), bp)
    clicked = Numeric().fit(frame, rng.random(80) < 0.5)
    clicks = Numeric().fit(frame, rng.random(80) < 0.3)
    with pytest.raises(ValueError, match="needs a model of"):
        policy_scores(clicked, wide, bp)
    models = {"clicked": clicked, "clicks": clicks}
    combined = policy_scores(models, wide, bp)
    expected = score_actions(clicked, wide, bp) - 0.5 * score_actions(clicks, wide, bp)
    assert combined == pytest.approx(expected)
    tuned = policy_scores(models, wide, bp, {"weights": {"clicks": 2.0}})
    assert tuned == pytest.approx(score_actions(clicked, wide, bp) + 2.0 * score_actions(clicks, wide, bp))
    frame_out = policy_frame(models, wide, bp)
    assert (frame_out["action"] == np.asarray(["send", "skip"])[np.argmax(combined, axis=1)]).all()
