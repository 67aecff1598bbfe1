"""Online value per version with bootstrap intervals, the holdback lift, the OPE promise, alerts."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa

from looper_common.contracts.blueprint import MonitoringSpec
from looper_common.lake.tables import ALIAS_HISTORY_SCHEMA
from looper_common.monitoring.alerts import alert_rows, evaluate_alerts
from looper_common.monitoring.metrics import Metric
from looper_common.monitoring.online import OnlineValue, online_value, ope_promises
from looper_common.sdk.holdback import in_holdback
from tests.conftest import make_blueprint

VERSION = "20260301-m3-abcdef"


def _examples(blueprint, n: int, policy_rate: float, default_rate: float, seed: int = 0,
              new_share: float = 0.0) -> pa.Table:
    """``n`` units; the held-back ones and a ``new_share`` of the others (new units) served the default."""
    rng = np.random.default_rng(seed)
    units = [f"u{i}" for i in range(n)]
    held = np.array([in_holdback(blueprint, u) for u in units])
    default = held | (rng.random(n) < new_share)
    reward = np.where(default, rng.random(n) < default_rate, rng.random(n) < policy_rate).astype(float)
    return pa.table({
        "decision_id": [f"d{i}" for i in range(n)], "label": ["clicked"] * n, "value": reward, "unit_id": units,
        "policy_version": [None if d else VERSION for d in default], "is_default": default,
    })


def test_online_value_lift_over_the_holdback_covers_the_truth():
    blueprint = make_blueprint(holdback={"share": 0.2})
    values = {v.name: v for v in online_value(blueprint, _examples(blueprint, 20_000, 0.30, 0.20), {})}
    # no other default served: outside the holdback, every unit got the policy
    assert set(values) == {VERSION, "policy", "holdback", "outside_holdback", "lift_over_holdback"}
    assert 3500 < values["holdback"].decisions < 4500
    assert values["holdback"].decisions + values["outside_holdback"].decisions == 20_000
    lift = values["lift_over_holdback"]
    assert lift.lower < 0.10 < lift.upper and lift.lower > 0.05
    assert values["policy"].lower < 0.30 < values["policy"].upper


def test_the_lift_counts_every_unit_outside_the_holdback_whatever_it_was_served():
    """Intent to treat: new units served the default outside the holdback are in the treated arm."""
    blueprint = make_blueprint(holdback={"share": 0.2})
    examples = _examples(blueprint, 60_000, 0.30, 0.20, seed=1, new_share=0.25)
    values = {v.name: v for v in online_value(blueprint, examples, {})}
    outside = values["outside_holdback"]
    assert outside.decisions == values["policy"].decisions + values["default"].decisions
    # truth: 0.75 * 0.30 + 0.25 * 0.20 - 0.20 = 0.075; policy-served vs held back would say 0.10
    lift = values["lift_over_holdback"]
    assert lift.lower < 0.075 < lift.upper and lift.upper < 0.10, lift
    assert lift.decisions == 60_000


def test_ope_promise_of_the_promoted_version_stands_next_to_it():
    blueprint = make_blueprint()
    history = pa.Table.from_pylist([{
        "model": "looper.t_notify.clicked", "version": "3", "alias": "champion", "ts": datetime(2026, 3, 1, tzinfo=UTC),
        "previous_version": None, "actor": "evaluate_models", "reason": "r",
        "metrics": [("ope.challenger.dr", 0.31), ("ope.challenger.dr_lower", 0.28), ("ope.challenger.dr_upper", 0.34)],
        "blueprint": "t_notify", "blueprint_version": "x", "run_date": date(2026, 3, 1)}], schema=ALIAS_HISTORY_SCHEMA)
    promises = ope_promises(history, "looper.t_notify.clicked")
    assert promises == {"3": (0.31, 0.28, 0.34)}
    [version] = [v for v in online_value(blueprint, _examples(blueprint, 500, 0.3, 0.3), promises) if v.name == VERSION]
    assert (version.ope_estimate, version.ope_lower, version.ope_upper) == (0.31, 0.28, 0.34)


def test_alerts_take_the_blueprint_thresholds_over_the_defaults():
    metrics = [Metric("feature_psi", 0.3, "x"), Metric("feature_psi", 0.15, "y"), Metric("feature_psi", None, "z"),
               Metric("default_share", 0.2), Metric("replay_mismatch", 0.0)]
    alerts = evaluate_alerts(MonitoringSpec(), metrics, [])
    assert [(a.check, a.subject, a.severity, a.threshold) for a in alerts] == [
        ("feature_psi", "x", "critical", 0.25), ("feature_psi", "y", "warning", 0.1),
        ("default_share", None, "warning", 0.1)]
    spec = MonitoringSpec(thresholds={"feature_psi": {"warn": 0.5}, "default_share": {"critical": 0.15}})
    alerts = evaluate_alerts(spec, metrics, [])
    assert [(a.check, a.severity) for a in alerts] == [("default_share", "critical")]
    rows = alert_rows(alerts, "t_notify", date(2026, 3, 2)).to_pylist()
    assert rows[0]["message"] == "critical: default_share is 0.2, beyond 0.15"


def test_a_negative_holdback_lift_alerts_only_when_configured():
    lift = [OnlineValue("lift_over_holdback", 1000, -0.05, -0.08, -0.02)]
    assert evaluate_alerts(MonitoringSpec(), [], lift) == []
    spec = MonitoringSpec(thresholds={"online_lift_lower": {"warn": 0.0}})
    [alert] = evaluate_alerts(spec, [], lift)
    assert (alert.check, alert.value, alert.severity) == ("online_lift_lower", -0.08, "warning")


def test_report_only_checks_take_levels_and_matured_share_alerts_below_its_level():
    metrics = [Metric("feature_chi2", 0.4, "country"), Metric("stream_lag", 5000.0), Metric("matured_share", 0.55),
               Metric("score_psi", 1.1, "send"), Metric("label_rate_shift", 0.04, "clicked")]
    assert evaluate_alerts(MonitoringSpec(), metrics, []) == []  # no default level for these
    spec = MonitoringSpec(thresholds={"feature_chi2": {"warn": 0.3}, "stream_lag": {"critical": 1000},
                                      "matured_share": {"warn": 0.8, "critical": 0.6}})
    assert [(a.check, a.severity, a.threshold) for a in evaluate_alerts(spec, metrics, [])] == [
        ("feature_chi2", "warning", 0.3), ("stream_lag", "critical", 1000.0), ("matured_share", "critical", 0.6)]
    spec = MonitoringSpec(thresholds={"matured_share": {"warn": 0.8, "critical": 0.5}})
    assert [(a.check, a.severity) for a in evaluate_alerts(spec, metrics, [])] == [("matured_share", "warning")]
    assert evaluate_alerts(spec, [Metric("matured_share", 0.95)], []) == []  # above a below-level: fine
