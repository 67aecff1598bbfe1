"""The checks of one blueprint and run date, their tables and their alerts.

Reads the day's decisions and matured examples, a reference window before them, the
join's statistics, the quarantine and Redis; replaces the day's partitions of
monitoring/drift, serving, freshness, online_value and alerts (a rerun gives the same
rows). The reference window is the ``monitoring.reference_days`` days ending the day
before the run date, or before the champion's training run date when that is earlier
(the data the champion was trained on).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from looper_common.contracts.blueprint import Blueprint
from looper_common.ingest.watermark import read_watermarks
from looper_common.lake.engine import Lake, blueprint_dates
from looper_common.lake.tables import (
    ALIAS_HISTORY,
    BRONZE_DECISIONS,
    BRONZE_OBSERVATIONS,
    JOIN_STATS,
    MONITOR_ALERTS,
    MONITOR_DRIFT,
    MONITOR_FRESHNESS,
    MONITOR_ONLINE_VALUE,
    MONITOR_SERVING,
    ONLINE_VALUE_SCHEMA,
    QUARANTINE,
    SILVER_EXAMPLES,
)
from looper_common.monitoring.alerts import CRITICAL, Alert, alert_rows, evaluate_alerts
from looper_common.monitoring.drift import feature_drift, score_drift
from looper_common.monitoring.flow import SDK_TOTALS, feedback_flow, redis_health, sdk_delivery
from looper_common.monitoring.labels import label_health
from looper_common.monitoring.metrics import Metric, metric_rows
from looper_common.monitoring.online import OnlineValue, online_value, ope_promises
from looper_common.monitoring.serving import serving_health
from looper_common.sdk.holdback import in_holdback

log = logging.getLogger(__name__)
_DECISION_COLUMNS = ["decision_id", "unit_id", "action", "propensity", "action_probs", "scores",
                     "policy_version", "is_default", "features"]
_EXAMPLE_COLUMNS = ["decision_id", "label", "value", "first_feedback_s", "unit_id", "action", "scores",
                    "policy_version", "is_default"]


@dataclass
class MonitorRun:
    blueprint: str
    run_date: date
    reference: tuple[date, date]
    drift: list[Metric] = field(default_factory=list)
    serving: list[Metric] = field(default_factory=list)
    freshness: list[Metric] = field(default_factory=list)
    online: list[OnlineValue] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    dashboard: Path | None = None  # the page written for the day, when one was

    @property
    def critical(self) -> list[Alert]:
        return [a for a in self.alerts if a.severity == CRITICAL]

    def critical_message(self) -> str:
        return (f"{len(self.critical)} critical alert(s) for {self.blueprint} on {self.run_date}: "
                + "; ".join(a.message for a in self.critical))

    def value(self, name: str) -> float | None:
        return next((m.value for m in (*self.drift, *self.serving, *self.freshness) if m.name == name), None)

    def summary(self) -> str:
        """One line: alerts, default share, the served policy's reward and the holdback lift."""
        def online(name: str) -> str:
            v = next((v for v in self.online if v.name == name), None)
            return "n/a" if v is None or v.mean is None else f"{v.mean:.4f} [{v.lower:.4f}, {v.upper:.4f}]"

        share = self.value("default_share")
        checks = ", ".join(sorted({a.check for a in self.alerts})) or "none"
        return (f"alerts {len(self.alerts)} ({len(self.critical)} critical): {checks}; "
                f"unexpected default share {'n/a' if share is None else f'{share:.1%}'}; "
                f"policy reward {online('policy')}; default {online('default')}; "
                f"lift over holdback {online('lift_over_holdback')}")


def reference_window(lake: Lake, blueprint: Blueprint, run_date: date, model: str) -> tuple[date, date]:
    """The days the drift checks compare against (see the module docstring)."""
    last = run_date - timedelta(days=1)
    moves = lake.read(ALIAS_HISTORY, filters=[("model", "=", model), ("alias", "=", "champion")],
                      columns=["run_date"]).table
    trained = [d for d in moves["run_date"].to_pylist() if d is not None and d <= run_date]
    if trained:
        last = min(last, max(trained) - timedelta(days=1))
    return last - timedelta(days=blueprint.monitoring.reference_days - 1), last


def held_back(blueprint: Blueprint, unit_ids: pa.ChunkedArray) -> np.ndarray | None:
    """Which of ``unit_ids`` are in the blueprint's holdback (None without one)."""
    if blueprint.holdback is None:
        return None
    return np.fromiter((in_holdback(blueprint, u) for u in unit_ids.to_pylist()), bool, len(unit_ids))


def _online_rows(values: list[OnlineValue], blueprint: Blueprint, day: date) -> pa.Table:
    rows = [{**v.__dict__, "blueprint": blueprint.name, "label": blueprint.objectives.maximize,
             "blueprint_version": blueprint.version, "date": day} for v in values]
    return pa.Table.from_pylist(rows, schema=ONLINE_VALUE_SCHEMA)


def _decision_columns() -> list[str]:
    return _DECISION_COLUMNS + (["default_reason"] if "default_reason" in BRONZE_DECISIONS.columns else [])


def previous_sdk_totals(lake: Lake, blueprint: str, run_date: date) -> dict[str, float]:
    """The SDK totals the newest monitored day before ``run_date`` (within 28 days) recorded."""
    rows = lake.read(MONITOR_FRESHNESS, columns=["check", "value", "date"], filters=[
        ("blueprint", "=", blueprint), ("date", ">=", run_date - timedelta(days=28)), ("date", "<", run_date),
        ("check", "in", list(SDK_TOTALS))]).table.to_pylist()
    newest = max((r["date"] for r in rows), default=None)
    return {r["check"]: r["value"] for r in rows if r["date"] == newest and r["value"] is not None}


def _redis_metrics(client: redis.Redis | None, blueprint: str, previous: dict[str, float]) -> list[Metric]:
    if client is None:
        return []
    try:
        return redis_health(client, blueprint) + sdk_delivery(client, blueprint, previous)
    except redis.RedisError as err:  # the monitor reports Redis unreachable; it does not stop on it
        return [Metric("redis_error", 1.0, None, f"{type(err).__name__}: {err}")]


def measure(lake: Lake, blueprint: Blueprint, run_date: date, client: redis.Redis | None) -> MonitorRun:
    """Every check of ``blueprint`` on ``run_date``, alerts included; writes nothing."""
    name = blueprint.name
    model = f"looper.{name}.{blueprint.objectives.maximize}"
    first, last = reference_window(lake, blueprint, run_date, model)
    run = MonitorRun(name, run_date, (first, last))
    today = lake.read(BRONZE_DECISIONS, filters=blueprint_dates(name, run_date, run_date),
                      columns=_decision_columns()).table
    reference = lake.read(BRONZE_DECISIONS, filters=blueprint_dates(name, first, last),
                          columns=["features", "scores"]).table
    examples = lake.read(SILVER_EXAMPLES, filters=blueprint_dates(name, run_date, run_date),
                         columns=_EXAMPLE_COLUMNS).table
    ref_examples = lake.read(SILVER_EXAMPLES, filters=blueprint_dates(name, first, last),
                             columns=["label", "value"]).table
    run.drift = (feature_drift(blueprint.features, reference["features"], today["features"])
                 + score_drift(blueprint.decision.actions, reference["scores"], today["scores"])
                 + label_health(blueprint, examples, ref_examples))
    before = lake.read(BRONZE_DECISIONS, columns=["unit_id"], filters=blueprint_dates(
        name, run_date - timedelta(days=blueprint.monitoring.reference_days), run_date - timedelta(days=1))).table
    run.serving = serving_health(today, blueprint.decision.actions, blueprint.monitoring.replay_sample,
                                 pc.unique(before["unit_id"]), held_back(blueprint, today["unit_id"]))

    observations = lake.read(BRONZE_OBSERVATIONS, filters=blueprint_dates(name, first, run_date),
                             columns=["ts", "date"]).table
    observations = observations.filter(pc.less_equal(observations["date"], pa.scalar(run_date)))
    observed_today = int(pc.sum(pc.equal(observations["date"], pa.scalar(run_date))).as_py() or 0)
    join_stats = lake.read(JOIN_STATS, filters=blueprint_dates(name, run_date, run_date)).table
    quarantined = lake.read(QUARANTINE, filters=[("date", "=", run_date), ("blueprint", "=", name)],
                            columns=["event_id"]).table.num_rows
    watermark = read_watermarks(lake).get(name)
    run.freshness = (feedback_flow(run_date, observations["ts"], today.num_rows, observed_today, examples,
                                   join_stats, quarantined, watermark)
                     + _redis_metrics(client, name, previous_sdk_totals(lake, name, run_date)))

    history = lake.read(ALIAS_HISTORY, filters=[("model", "=", model)]).table
    run.online = online_value(blueprint, examples, ope_promises(history, model))
    run.alerts = evaluate_alerts(blueprint.monitoring, [*run.drift, *run.serving, *run.freshness], run.online)
    return run


def record_day(lake: Lake, blueprint: Blueprint, run_date: date, client: redis.Redis | None) -> MonitorRun:
    """Measure every check and replace the day's monitoring partitions (idempotent per run date)."""
    run = measure(lake, blueprint, run_date, client)
    where = {"blueprint": blueprint.name, "date": run_date}
    for spec, metrics in ((MONITOR_DRIFT, run.drift), (MONITOR_SERVING, run.serving),
                          (MONITOR_FRESHNESS, run.freshness)):
        lake.replace_partition(spec, metric_rows(metrics, blueprint.name, blueprint.version, run_date), where)
    lake.replace_partition(MONITOR_ONLINE_VALUE, _online_rows(run.online, blueprint, run_date), where)
    lake.replace_partition(MONITOR_ALERTS, alert_rows(run.alerts, blueprint.name, run_date), where)
    for alert in run.alerts:
        log.warning("%s %s: %s", blueprint.name, run_date, alert.message)
    return run
