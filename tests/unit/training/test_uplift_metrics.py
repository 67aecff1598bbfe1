"""Qini curve, AUUC, Qini coefficient and PEHE on tiny cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from looper_common.training.uplift import treatment_propensity
from looper_common.training.uplift_metrics import auuc, pehe, qini_coefficient, qini_curve, qini_figure

# four units, e = 0.5: contributions c = W Y / e - (1 - W) Y / (1 - e) = [2, 0, 0, -2]
TREATED = np.array([1, 0, 1, 0], dtype=bool)
OUTCOME = np.array([1.0, 0.0, 0.0, 1.0])
HALF = np.full(4, 0.5)


def test_curve_is_the_cumulative_ipw_gain_per_unit() -> None:
    phi, gain = qini_curve(np.array([4.0, 3.0, 2.0, 1.0]), TREATED, OUTCOME, HALF)
    np.testing.assert_allclose(phi, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(gain, [0.0, 0.5, 0.5, 0.5, 0.0])  # cumsum(c) / 4
    # trapezoids: 0.25 * (0.25 + 0.5 + 0.5 + 0.25) = 0.375; random line ends at G(1) = 0
    assert auuc(np.array([4.0, 3.0, 2.0, 1.0]), TREATED, OUTCOME, HALF) == pytest.approx(0.375)
    assert qini_coefficient(np.array([4.0, 3.0, 2.0, 1.0]), TREATED, OUTCOME, HALF) == pytest.approx(0.375)


def test_the_order_comes_from_the_score_not_the_rows() -> None:
    score = np.array([1.0, 2.0, 3.0, 4.0])  # reversed: the unit with c = -2 comes first
    phi, gain = qini_curve(score, TREATED, OUTCOME, HALF)
    np.testing.assert_allclose(gain, [0.0, -0.5, -0.5, -0.5, 0.0])
    assert qini_coefficient(score, TREATED, OUTCOME, HALF) == pytest.approx(-0.375)


def test_ties_form_one_block_and_a_constant_score_is_random_targeting() -> None:
    phi, gain = qini_curve(np.array([1.0, 1.0, 0.0, 0.0]), TREATED, OUTCOME, HALF)
    np.testing.assert_allclose(phi, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(gain, [0.0, 0.5, 0.0])
    assert auuc(np.array([1.0, 1.0, 0.0, 0.0]), TREATED, OUTCOME, HALF) == pytest.approx(0.25)
    outcome = np.array([1.0, 0.0, 1.0, 1.0])  # c = [2, 0, 2, -2]: G(1) = 0.5
    constant = np.zeros(4)
    phi, gain = qini_curve(constant, TREATED, outcome, HALF)
    np.testing.assert_allclose(phi, [0.0, 1.0])
    np.testing.assert_allclose(gain, [0.0, 0.5])
    assert auuc(constant, TREATED, outcome, HALF) == pytest.approx(0.25)
    assert qini_coefficient(constant, TREATED, outcome, HALF) == pytest.approx(0.0)
    # the good ranking (c = 2, 2, 0, -2) beats random: AUUC 0.25*(0.25+0.75+1+0.75) = 0.6875
    assert qini_coefficient(np.array([4.0, 2.0, 3.0, 1.0]), TREATED, outcome, HALF) == pytest.approx(0.4375)


def test_logged_propensities_weight_each_arm() -> None:
    e = treatment_propensity(np.array(["treat", "control"]), np.array([0.25, 0.25]), "treat")
    np.testing.assert_allclose(e, [0.25, 0.75])  # a control row served with 0.25: P(treat) = 0.75
    treated, outcome = np.array([True, False]), np.array([1.0, 1.0])
    # c = [1 / 0.25, -1 / (1 - 0.75)] = [4, -4]
    phi, gain = qini_curve(np.array([2.0, 1.0]), treated, outcome, e)
    np.testing.assert_allclose(gain, [0.0, 2.0, 0.0])
    assert qini_coefficient(np.array([2.0, 1.0]), treated, outcome, e) == pytest.approx(1.0)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="lengths differ"):
        qini_curve(np.zeros(3), TREATED, OUTCOME, HALF)
    with pytest.raises(ValueError, match="lengths differ"):
        qini_curve(np.zeros(4), TREATED, OUTCOME[:3], HALF)
    with pytest.raises(ValueError, match="no units"):
        qini_curve(np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        qini_curve(np.zeros(4), TREATED, OUTCOME, np.array([0.5, 1.0, 0.5, 0.5]))


def test_pehe_is_the_root_mean_squared_effect_error() -> None:
    assert pehe(np.array([0.1, 0.2, 0.3]), np.array([0.1, 0.0, 0.0])) == pytest.approx(math.sqrt(0.13 / 3))
    assert pehe(np.array([0.05, -0.02]), np.array([0.05, -0.02])) == 0.0
    with pytest.raises(ValueError, match="one shape"):
        pehe(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="non-empty"):
        pehe(np.zeros(0), np.zeros(0))


def test_qini_figure_draws_each_curve_and_random_targeting() -> None:
    fig = qini_figure({"good": np.array([4.0, 3.0, 2.0, 1.0]), "flat": np.zeros(4)}, TREATED, OUTCOME, HALF)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:3] == ["good (Qini 0.3750)", "flat (Qini 0.0000)", "random targeting"]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [0.0, 0.5, 0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="no scores"):
        qini_figure({}, TREATED, OUTCOME, HALF)
