"""Label health on non-binary labels: calibration compares the scores with the reward they predict."""

from __future__ import annotations

import pyarrow as pa
import pytest

from looper_common.monitoring.labels import label_health
from tests.conftest import make_blueprint

OUTCOME = {"name": "outcome", "observation": "outcome", "window": "1h", "aggregation": "max",
           "classes": {0: 0.0, 1: 1.0, 2: 6.0, 3: -5.0}}
SCORES = pa.map_(pa.string(), pa.float64())


def examples(label: str, values: list[float], scores: list[dict[str, float] | None]) -> pa.Table:
    return pa.table({
        "label": [label] * len(values), "value": pa.array(values, pa.float64()),
        "action": ["send"] * len(values),
        "scores": pa.array([None if s is None else list(s.items()) for s in scores], SCORES),
    })


def metrics(blueprint, today: pa.Table, reference: pa.Table) -> dict[str, float | None]:
    return {m.name: m.value for m in label_health(blueprint, today, reference)}


def test_multiclass_calibration_is_in_rewards_and_unknown_classes_are_left_out():
    bp = make_blueprint(labels=[OUTCOME], model={"task": "multiclass"}, objectives={"maximize": "outcome"},
                        policy={"type": "argmax"})
    # classes 2 (reward 6) and 3 (reward -5): mean reward 0.5; the served scores promise 1.0
    today = examples("outcome", [2.0, 3.0, 9.0], [{"send": 1.0, "skip": 0.0}] * 3)
    reference = examples("outcome", [0.0, 1.0], [None, None])
    out = metrics(bp, today, reference)
    assert out["calibration_gap:outcome"] == pytest.approx(0.5)  # class 9 has no reward: not counted
    assert out["label_rate:outcome"] == pytest.approx(14.0 / 3)
    assert out["label_rate_shift:outcome"] == pytest.approx(14 / 3 - 0.5)


def test_regression_calibration_compares_predicted_and_observed_values():
    bp = make_blueprint(model={"task": "regression"}, objectives={"maximize": "revenue"}, policy={"type": "argmax"})
    today = examples("revenue", [10.0, 30.0], [{"send": 25.0}, {"send": 25.0}])
    out = metrics(bp, today, today)
    assert out["calibration_gap:revenue"] == pytest.approx(5.0)  # promised 25, observed 20 on average
    assert out["label_rate:revenue"] == 20.0 and out["label_rate_shift:revenue"] == 0.0
