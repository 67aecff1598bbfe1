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


def test_the_draw_is_blake2b_of_blueprint_and_unit_and_withhold_agrees_with_it():
    import hashlib

    from looper_common.contracts import events
    from looper_common.sdk.holdback import HOLDBACK_PERSON, withhold

    for blueprint, unit in (("t_notify", "u1"), ("other", "ü-ß"), ("t_notify", "")):  # the contract's formula
        digest = hashlib.blake2b(f"{blueprint}:{unit}".encode(), digest_size=8, person=HOLDBACK_PERSON).digest()
        assert holdback_draw(blueprint, unit) == int.from_bytes(digest, "big") / 2.0**64
    bp = make_blueprint(holdback={"share": 0.3})
    units = [f"u{i}" for i in range(3_000)]
    entries = [b"e"] * len(units)
    withheld = withhold(bp, [(u, {}) for u in units], entries)
    assert withheld == [events.HOLDBACK if in_holdback(bp, u) else b"e" for u in units]
    assert 0.25 < withheld.count(events.HOLDBACK) / len(units) < 0.35
