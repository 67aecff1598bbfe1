"""Monitoring: drift, serving health, data flow, online value and alerts of one blueprint and day."""

from __future__ import annotations

from looper_common._exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    metrics="Metric",
    drift="psi numeric_psi category_psi feature_drift",
    serving="serving_health",
    labels="label_health",
    flow="feedback_flow redis_health",
    online="online_value OnlineValue",
    alerts="evaluate_alerts Alert",
    monitor="record_day measure MonitorRun",
    run="monitor_blueprint dashboard_folder",
    report="day_line",
    dashboard="render_dashboard write_dashboard",
)
