"""Serving health: default shares by reason, logged propensity vs action_probs, replayed draws."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from looper_common.lake.tables import NUMBER_MAP
from looper_common.monitoring.serving import logged_action_probability, serving_health
from looper_common.sdk.exploration import draw_action

ACTIONS = ["send", "skip"]


def _decisions(n: int, *, default_every: int = 0, reasons: list[str | None] | None = None, corrupt: int = 0):
    rows = []
    for i in range(n):
        decision_id = f"d{i:05d}"
        probs = {"send": 0.8, "skip": 0.2}
        action = draw_action(decision_id, probs)
        is_default = bool(default_every) and i % default_every == 0
        rows.append({"decision_id": decision_id, "action": action if i >= corrupt else "send",
                     "propensity": probs[action] if i >= corrupt else 0.5, "action_probs": list(probs.items()),
                     "policy_version": None if is_default else "20260301-m1-abc", "is_default": is_default})
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("decision_id", pa.string()), ("action", pa.string()), ("propensity", pa.float64()),
        ("action_probs", NUMBER_MAP), ("policy_version", pa.string()), ("is_default", pa.bool_())]))
    if reasons is not None:
        table = table.append_column("default_reason", pa.array(reasons, pa.string()))
    return table


def test_a_clean_day_has_no_mismatch_and_no_unexpected_default():
    metrics = {m.name: m.value for m in serving_health(_decisions(500), ACTIONS, 100)}
    assert metrics["decisions"] == 500 and metrics["decisions_by_version:20260301-m1-abc"] == 500
    assert metrics["propensity_mismatch"] == 0 and metrics["replay_mismatch"] == 0
    assert metrics["default_share"] == 0.0


def test_mismatched_propensities_and_draws_are_counted():
    metrics = {m.name: m.value for m in serving_health(_decisions(500, corrupt=40), ACTIONS, 1000)}
    assert metrics["propensity_mismatch"] == 40
    # the corrupted rows logged "send": those whose id draws "skip" do not replay
    expected = sum(draw_action(f"d{i:05d}", {"send": 0.8, "skip": 0.2}) != "send" for i in range(40))
    assert metrics["replay_mismatch"] == expected > 0


def test_default_share_without_and_with_reasons():
    metrics = {m.name: m.value for m in serving_health(_decisions(100, default_every=4), ACTIONS, 10)}
    assert metrics["default_share"] == 0.25  # no reason logged: defaults next to policy-served decisions
    reasons = [("holdback" if i % 8 == 0 else "unknown_unit") if i % 4 == 0 else None for i in range(100)]
    metrics = {m.name: m.value for m in serving_health(_decisions(100, default_every=4, reasons=reasons),
                                                       ACTIONS, 10)}
    assert metrics["default_share"] == 0.12  # holdback is intended, unknown_unit is not
    assert metrics["default_reason_share:holdback"] == 0.13 and metrics["default_share_all"] == 0.25


def test_a_day_without_any_policy_has_no_unexpected_default():
    every_default = _decisions(10, default_every=1)
    assert {m.name: m.value for m in serving_health(every_default, ACTIONS, 10)}["default_share"] == 0.0


def test_logged_action_probability_over_chunks_and_null_maps():
    probs = pa.chunked_array([pa.array([[("a", 0.3), ("b", 0.7)], None], NUMBER_MAP),
                              pa.array([[("x", 1.0)], [("a", 0.4), ("b", 0.6)]], NUMBER_MAP).slice(1)])
    values = logged_action_probability(probs, pa.chunked_array([["b", "a", "a"]]))
    assert values[0] == 0.7 and values[1] != values[1] and values[2] == 0.4


def test_a_default_for_a_unit_first_seen_today_is_expected():
    decisions = _decisions(100, default_every=4)
    decisions = decisions.append_column("unit_id", pa.array([f"u{i}" for i in range(100)]))
    known = pa.array([f"u{i}" for i in range(50)])  # u50.. are new today
    metrics = {m.name: m.value for m in serving_health(decisions, ACTIONS, 10, known)}
    assert metrics["default_share"] == 0.13  # the defaults of u0, u4, ..., u48
    reasons = ["unknown_unit" if i % 4 == 0 else None for i in range(100)]
    with_reasons = decisions.append_column("default_reason", pa.array(reasons, pa.string()))
    assert {m.name: m.value for m in serving_health(with_reasons, ACTIONS, 10, known)}["default_share"] == 0.13


def test_the_holdback_defaults_are_intended():
    decisions = _decisions(100, default_every=4)
    held = np.arange(100) % 8 == 0  # half the defaults are the holdback's
    assert {m.name: m.value for m in serving_health(decisions, ACTIONS, 10, None, held)}["default_share"] == 0.12
