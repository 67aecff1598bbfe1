"""One measured quantity of a check (``feature_psi`` of ``country``, ``default_share``) and its table rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from looper_common.lake.tables import MONITOR_METRICS_SCHEMA


@dataclass(frozen=True)
class Metric:
    """``check`` measured on ``subject`` (a feature, a label, a reason; None: the blueprint as a whole)."""

    check: str
    value: float | None
    subject: str | None = None
    detail: str | None = None

    @property
    def name(self) -> str:
        return self.check if self.subject is None else f"{self.check}:{self.subject}"


def metric_rows(metrics: Sequence[Metric], blueprint: str, blueprint_version: str, day: date) -> pa.Table:
    """``metrics`` as rows of a monitoring/drift, serving or freshness table."""
    return pa.Table.from_pylist(
        [
            {"blueprint": blueprint, "name": m.name, "check": m.check, "subject": m.subject,
             "value": None if m.value is None else float(m.value), "detail": m.detail,
             "blueprint_version": blueprint_version, "date": day}
            for m in metrics
        ],
        schema=MONITOR_METRICS_SCHEMA,
    )
