"""The holdback: a stable hashed share of units, the same in every process, per blueprint."""

from __future__ import annotations

from looper_common.sdk.holdback import holdback_draw, in_holdback
from tests.conftest import make_blueprint


def test_holdback_share_is_stable_and_close_to_the_configured_share():
    blueprint = make_blueprint(holdback={"share": 0.05})
    units = [f"u{i}" for i in range(20_000)]
    held = [u for u in units if in_holdback(blueprint, u)]
    assert 0.045 < len(held) / len(units) < 0.055
    assert held == [u for u in units if in_holdback(blueprint, u)]
    assert holdback_draw("t_notify", "u1") == holdback_draw("t_notify", "u1") != holdback_draw("other", "u1")


def test_no_holdback_without_the_option():
    assert not any(in_holdback(make_blueprint(), f"u{i}") for i in range(1000))
