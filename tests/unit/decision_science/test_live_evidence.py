"""The canary's on-policy value and interval, and the require_canary gate's verdict and reason."""

from __future__ import annotations

import numpy as np
import pandas as pd

from looper_common.decision_science.evaluation import PromotionVerdict
from looper_common.decision_science.live_evidence import canary_evidence, canary_gate
from looper_common.publishing.publish import model_version_of
from tests.conftest import make_blueprint

BP = make_blueprint(promotion={"stage": "canary", "canary": {"share": 0.5}, "require_canary": {"min_decisions": 100}})


def _frame(n: int, canary_rate: float, champion_rate: float, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    canary = np.arange(n) % 2 == 0
    clicked = np.where(canary, rng.random(n) < canary_rate, rng.random(n) < champion_rate).astype(float)
    return pd.DataFrame({
        "decision_id": [f"d{i}" for i in range(n)], "clicked": clicked, "is_default": False,
        "variant": np.where(canary, "canary", None),
        "policy_version": np.where(canary, "20260410-m2-abcdef", "20260410-m1-abcdef"),
    })


def test_the_canary_mean_and_lift_cover_the_truth_and_count_only_this_challenger():
    frame = _frame(4000, 0.6, 0.4)
    evidence = canary_evidence(frame, BP, "clicked", "2", n_bootstrap=200)
    assert (evidence.decisions, evidence.champion_decisions) == (2000, 2000)
    canary = frame["variant"].notna()
    means = frame.loc[canary, "clicked"].mean(), frame.loc[~canary, "clicked"].mean()
    assert (evidence.canary.value, evidence.champion.value) == means
    assert evidence.lift.value == means[0] - means[1]
    for iv, p in ((evidence.canary, means[0]), (evidence.champion, means[1])):  # the binomial standard error
        assert iv.lower < iv.value < iv.upper
        assert 0.7 < iv.std_error / np.sqrt(p * (1 - p) / 2000) < 1.3
    assert 0.7 < evidence.lift.std_error / np.hypot(evidence.canary.std_error, evidence.champion.std_error) < 1.3
    assert evidence.lift.lower > 0.1  # 2,000 decisions a side: the interval is about +-0.03 around 0.2
    assert canary_evidence(frame, BP, "clicked", "3", n_bootstrap=50).decisions == 0  # another challenger


def test_require_canary_keeps_the_champion_until_there_is_enough_evidence():
    passing = PromotionVerdict(True, "log_loss 0.5 vs champion 0.6: not worse", {"x": 1.0})
    small = canary_evidence(_frame(100, 0.6, 0.4), BP, "clicked", "2", n_bootstrap=50)
    kept = canary_gate(BP, small, passing)
    assert not kept.promote and "canary served 50 held-out decisions" in kept.reason
    assert "fewer than require_canary.min_decisions 100: kept (log_loss 0.5" in kept.reason
    assert kept.metrics["canary.decisions"] == 50 and kept.metrics["x"] == 1.0
    enough = canary_gate(BP, canary_evidence(_frame(400, 0.6, 0.4), BP, "clicked", "2", n_bootstrap=50), passing)
    assert enough.promote and enough.reason.startswith(passing.reason + "; canary served 200")
    failing = PromotionVerdict(False, "worse", {})
    assert not canary_gate(BP, canary_evidence(_frame(400, 0.6, 0.4), BP, "clicked", "2", n_bootstrap=50),
                           failing).promote  # evidence never overrides the rule


def test_model_version_of_reads_publish_policy_versions():
    assert model_version_of("20260410-m12-abcdef-p123456") == "12"
    assert model_version_of(None) is None and model_version_of("manual") is None
