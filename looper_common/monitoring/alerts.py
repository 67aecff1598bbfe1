"""Alerts: a check's value beyond its blueprint threshold (``monitoring.thresholds``, else the defaults).

Beyond is above the level, below it for ``BELOW_LEVEL_CHECKS`` (``matured_share``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from looper_common.contracts.blueprint import BELOW_LEVEL_CHECKS, MonitoringSpec
from looper_common.lake.tables import ALERTS_SCHEMA
from looper_common.monitoring.metrics import Metric
from looper_common.monitoring.online import OnlineValue

CRITICAL, WARNING = "critical", "warning"


@dataclass(frozen=True)
class Alert:
    check: str
    subject: str | None
    value: float
    threshold: float
    severity: str

    @property
    def message(self) -> str:
        what = self.check if self.subject is None else f"{self.check} of {self.subject}"
        return f"{self.severity}: {what} is {self.value:.4g}, beyond {self.threshold:.4g}"


def _level(value: float, warn: float | None, critical: float | None, below: bool = False) -> tuple[str, float] | None:
    def beyond(level: float) -> bool:
        return value < level if below else value > level

    if critical is not None and beyond(critical):
        return CRITICAL, critical
    if warn is not None and beyond(warn):
        return WARNING, warn
    return None


def evaluate_alerts(spec: MonitoringSpec, metrics: Sequence[Metric], online: Sequence[OnlineValue]) -> list[Alert]:
    """Every metric beyond its check's warn or critical level; the holdback lift's lower bound below minus it."""
    alerts = []
    for m in metrics:
        if m.value is None or m.value != m.value:  # not measured today, or NaN
            continue
        t = spec.threshold(m.check)
        level = _level(m.value, t.warn, t.critical, m.check in BELOW_LEVEL_CHECKS)
        if level is not None:
            alerts.append(Alert(m.check, m.subject, float(m.value), level[1], level[0]))
    t = spec.threshold("online_lift_lower")
    for v in online:
        if v.name == "lift_over_holdback" and v.lower is not None and v.lower == v.lower:
            level = _level(-v.lower, t.warn, t.critical)
            if level is not None:
                alerts.append(Alert("online_lift_lower", None, v.lower, -level[1], level[0]))
    return alerts


def alert_rows(alerts: Sequence[Alert], blueprint: str, day: date) -> pa.Table:
    return pa.Table.from_pylist(
        [{"blueprint": blueprint, "check": a.check, "subject": a.subject, "value": a.value, "threshold": a.threshold,
          "severity": a.severity, "message": a.message, "date": day} for a in alerts],
        schema=ALERTS_SCHEMA,
    )
