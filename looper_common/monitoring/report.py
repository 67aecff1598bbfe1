"""The monitor's day in one line, read back from the monitoring tables (what ``make demo`` prints)."""

from __future__ import annotations

from datetime import date

from looper_common.lake.engine import Lake, blueprint_dates
from looper_common.lake.tables import MONITOR_ALERTS, MONITOR_ONLINE_VALUE, MONITOR_SERVING


def _interval(row: dict | None) -> str:
    if row is None or row["mean"] is None:
        return "n/a"
    return f"{row['mean']:.4f} [{row['lower']:.4f}, {row['upper']:.4f}]"


def day_line(lake: Lake, blueprint: str, day: date) -> str:
    """Alerts, default share, the served policy's online reward and the holdback lift of ``day``."""
    alerts = lake.read(MONITOR_ALERTS, filters=[("date", "=", day), ("blueprint", "=", blueprint)]).table.to_pylist()
    serving = {r["name"]: r["value"] for r in lake.read(MONITOR_SERVING, filters=blueprint_dates(blueprint, day, day),
                                                          columns=["name", "value"]).table.to_pylist()}
    online = {r["name"]: r for r in lake.read(MONITOR_ONLINE_VALUE, filters=blueprint_dates(blueprint, day, day))
              .table.to_pylist()}
    if alerts:
        text = ", ".join(f"{a['severity']} {a['check']}{':' + a['subject'] if a['subject'] else ''}={a['value']:.3g}"
                         for a in sorted(alerts, key=lambda a: (a["severity"], a["check"])))
    else:
        text = "none"
    share = serving.get("default_share_all")
    return (f"alerts: {text}; default share {'n/a' if share is None else f'{share:.1%}'}; "
            f"policy reward {_interval(online.get('policy'))}; "
            f"lift over holdback {_interval(online.get('lift_over_holdback'))}")
