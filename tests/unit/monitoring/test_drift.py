"""PSI for binned numbers and categories, missing and unseen shares, on Arrow feature maps."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from looper_common.contracts.blueprint import FeatureSpec
from looper_common.lake.tables import TEXT_MAP
from looper_common.monitoring.drift import category_psi, feature_drift, numeric_psi, psi


def _maps(rows: list[dict[str, str]]) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array([list(r.items()) for r in rows], TEXT_MAP)])


def test_psi_of_known_shares():
    # (0.5-0.25) ln 2 + (0.5-0.75) ln(2/3)
    assert psi(np.array([25, 75]), np.array([50, 50])) == pytest.approx(0.25 * np.log(2) - 0.25 * np.log(2 / 3))
    assert psi(np.array([10, 10]), np.array([10, 10])) == 0.0


def test_numeric_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    reference = rng.lognormal(size=5000)
    assert numeric_psi(reference, rng.lognormal(size=5000)) < 0.02
    assert numeric_psi(reference, 3 * rng.lognormal(size=5000)) > 0.25


def test_category_psi_chi_square_and_unseen():
    same = category_psi(["a", "b"] * 500, ["b", "a"] * 500)
    assert same == (0.0, 0.0, 0.0)
    drift, chi2, unseen = category_psi(["a", "b"] * 500, ["a"] * 500 + ["c"] * 500)
    assert drift > 1 and chi2 > 100 and unseen == 0.5  # "c" expected at the floor share 1e-4


def test_feature_drift_counts_missing_unparsable_and_empty_values():
    features = [FeatureSpec(name="x", type="float"), FeatureSpec(name="c", type="category")]
    reference = _maps([{"x": str(i), "c": "us"} for i in range(100)])
    current = _maps([{"x": "NaN", "c": ""}, {"x": "oops"}, {"x": "1.5e1", "c": "us"}, {"x": "3", "c": "gb"}])
    metrics = {m.name: m.value for m in feature_drift(features, reference, current)}
    assert metrics["feature_missing:x"] == 0.5  # NaN and "oops"
    assert metrics["feature_missing:c"] == 0.5  # "" and not sent
    assert metrics["unseen_categories:c"] == 0.5  # gb of {us, gb}
    assert metrics["feature_psi:x"] > 0 and metrics["feature_psi:c"] > 0


def test_feature_drift_without_a_reference_measures_no_drift():
    features = [FeatureSpec(name="x", type="float")]
    metrics = {m.name: m.value for m in feature_drift(features, _maps([]), _maps([{"x": "1"}]))}
    assert metrics == {"feature_psi:x": None, "feature_missing:x": 0.0}
