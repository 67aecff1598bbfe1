"""Simulator faults: what they change in the logged features, and the errors for a wrong feature."""

from __future__ import annotations

import math

import pytest

from looper_common.simulate.faults import DefaultShare, Faults, FeatureDrop, FeatureShift
from tests.conftest import make_blueprint

ROWS = [{"recency": 2.0, "visits": 3, "opted_in": True, "country": "us"}]


def test_feature_faults_start_on_their_day_and_leave_the_input_alone():
    faults = Faults(shift=FeatureShift("visits", day=2, factor=2.0, offset=1.0), drop=FeatureDrop("country", day=3))
    bp = make_blueprint()
    assert faults.features(bp, 1, ROWS) is ROWS
    assert faults.features(bp, 2, ROWS) == [{**ROWS[0], "visits": 7}]
    [dropped] = faults.features(bp, 3, ROWS)
    assert dropped["country"] == "" and dropped["visits"] == 7 and ROWS[0]["country"] == "us"
    [nan] = Faults(drop=FeatureDrop("recency", day=0)).features(bp, 0, ROWS)
    assert math.isnan(nan["recency"])


def test_the_default_share_fault_picks_a_stable_share_on_its_day_only():
    faults = Faults(default=DefaultShare(0.3, day=4))
    units = [f"u{i}" for i in range(10_000)]
    picked = faults.unpublished_units("t_notify", 4, units)
    assert 0.28 < len(picked) / len(units) < 0.32 and picked == faults.unpublished_units("t_notify", 4, units)
    assert faults.unpublished_units("t_notify", 3, units) == []
    assert Faults(stop_feedback_day=2).feedback_stopped(2) and not Faults(stop_feedback_day=2).feedback_stopped(3)


@pytest.mark.parametrize(("faults", "field"), [
    (Faults(shift=FeatureShift("country", day=0)), "faults.shift.feature"),
    (Faults(drop=FeatureDrop("visits", day=0)), "faults.drop.feature"),
    (Faults(default=DefaultShare(1.5, day=0)), "faults.default.share"),
])
def test_a_fault_the_blueprint_cannot_have_names_its_field(faults, field):
    with pytest.raises(ValueError, match=field):
        faults.check(make_blueprint())
