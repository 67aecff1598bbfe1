"""A self-contained HTML page per blueprint and day: the last 28 days of the monitoring tables, plotted.

Each plot is a matplotlib PNG embedded as base64, so the file opens anywhere (and as an
MLflow artifact) without the lake: input drift per feature, label rates, the default
share, feedback and ingestion freshness, online reward per group and per policy version with
its interval (next to the OPE value the version was promoted on), the holdback lift, and
the alerts.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from pathlib import Path

import matplotlib.dates as mdates
from matplotlib.figure import Figure

from looper_common.contracts.blueprint import Blueprint
from looper_common.lake.engine import Lake, blueprint_dates
from looper_common.lake.tables import (
    MONITOR_ALERTS,
    MONITOR_DRIFT,
    MONITOR_FRESHNESS,
    MONITOR_ONLINE_VALUE,
    MONITOR_SERVING,
)

DAYS = 28
LEGEND_VERSIONS = 10  # the colour cycle's length: older versions reuse the colours, unnamed


def _figure(height: float = 2.8, legend_outside: bool = False) -> Figure:
    """A figure of one plot with fixed margins: saved in one draw (a tight bounding box costs a second)."""
    fig = Figure(figsize=(7, height))
    fig.subplots_adjust(left=0.1, right=0.78 if legend_outside else 0.98, bottom=0.12, top=0.88)
    fig.subplots()
    return fig


def _png(fig: Figure) -> str:
    for ax in fig.axes:  # at most 10 ticks, labelled by the day
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=2, maxticks=10))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72)  # the Agg canvas: no pyplot, no GUI backend
    return base64.b64encode(buffer.getvalue()).decode()


def _series(rows: list[dict], check: str) -> dict[str, list[tuple[date, float]]]:
    out: dict[str, list[tuple[date, float]]] = defaultdict(list)
    for r in rows:
        if r["check"] == check and r["value"] is not None:
            out[r["subject"] or check].append((r["date"], r["value"]))
    return {k: sorted(v) for k, v in out.items()}


def _line_plot(title: str, series: dict[str, list[tuple[date, float]]], levels: dict[str, float | None]) -> str:
    fig = _figure()
    ax = fig.axes[0]
    for name, points in sorted(series.items()):
        ax.plot([d for d, _ in points], [v for _, v in points], marker="o", ms=3, label=name)
    for name, level in levels.items():
        if level is not None:
            ax.axhline(level, ls="--", lw=1, color="red" if name == "critical" else "orange", label=name)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


def _interval_plot(title: str, rows: list[dict], names: list[str]) -> str:
    fig = _figure()
    ax = fig.axes[0]
    for i, name in enumerate(names):
        points = sorted(((r["date"], r) for r in rows if r["name"] == name and r["mean"] is not None),
                        key=lambda p: p[0])
        if not points:
            continue
        days = [datetime.combine(d, time(4 * i)) for d, _ in points]  # side by side, not on top of each other
        ax.errorbar(days, [r["mean"] for _, r in points], yerr=_spread(r for _, r in points), fmt="o", ms=3,
                    capsize=2, label=name)
    if names == ["lift_over_holdback"]:
        ax.axhline(0.0, color="grey", lw=1)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


GROUPS = frozenset({"policy", "default", "holdback", "outside_holdback", "lift_over_holdback"})


def version_figure(title: str, rows: list[dict]) -> Figure:
    """Each policy version's realized reward per day with its interval; hollow: the OPE value it was promoted on."""
    versions = sorted({r["name"] for r in rows if r["name"] not in GROUPS and r["mean"] is not None})
    fig = _figure(3.2, legend_outside=True)
    ax = fig.axes[0]
    promised = False
    for i, version in enumerate(versions):
        points = sorted(((r["date"], r) for r in rows if r["name"] == version and r["mean"] is not None),
                        key=lambda p: p[0])
        days = [datetime.combine(d, time(3 * (i % 6))) for d, _ in points]
        bars = ax.errorbar(days, [r["mean"] for _, r in points], yerr=_spread(r for _, r in points),
                           fmt="o", ms=3, capsize=2,
                           label=version if i >= len(versions) - LEGEND_VERSIONS else "_nolegend_")
        ope = [(day, r) for day, (_, r) in zip(days, points, strict=True) if r["ope_estimate"] is not None]
        if ope:
            ax.errorbar([day + timedelta(hours=1.5) for day, _ in ope], [r["ope_estimate"] for _, r in ope],
                        yerr=_spread(({"mean": r["ope_estimate"], "lower": r["ope_lower"], "upper": r["ope_upper"]}
                                      for _, r in ope)),
                        fmt="o", ms=4, mfc="none", capsize=2, ls="none", color=bars[0].get_color(),
                        label=None if promised else "OPE at promotion (hollow)")
            promised = True
    ax.set_title(title)
    if versions:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  title=f"newest {min(len(versions), LEGEND_VERSIONS)} of {len(versions)}", title_fontsize=6)
    else:
        ax.text(0.5, 0.5, "no policy version served in these days", ha="center", transform=ax.transAxes)
    return fig


def _spread(rows) -> list[list[float]]:
    """Error bar lengths below and above each mean (0 where a bound is unknown)."""
    below, above = [], []
    for r in rows:
        lower, upper = r["lower"], r["upper"]
        below.append(r["mean"] - lower if lower is not None and lower == lower else 0.0)
        above.append(upper - r["mean"] if upper is not None and upper == upper else 0.0)
    return [below, above]


def render_dashboard(lake: Lake, blueprint: Blueprint, run_date: date) -> str:
    """The page's HTML for ``blueprint`` on ``run_date`` (the 28 days up to it)."""
    filters = blueprint_dates(blueprint.name, run_date - timedelta(days=DAYS - 1), run_date)
    drift = lake.read(MONITOR_DRIFT, filters=filters).table.to_pylist()
    serving = lake.read(MONITOR_SERVING, filters=filters).table.to_pylist()
    freshness = lake.read(MONITOR_FRESHNESS, filters=filters).table.to_pylist()
    online = lake.read(MONITOR_ONLINE_VALUE, filters=filters).table.to_pylist()
    alerts = lake.read(MONITOR_ALERTS, filters=[("date", ">=", filters[1][2]), ("date", "<=", run_date),
                                                ("blueprint", "=", blueprint.name)]).table.to_pylist()
    spec = blueprint.monitoring

    def levels(check: str) -> dict[str, float | None]:
        t = spec.threshold(check)
        return {"warn": t.warn, "critical": t.critical}

    plots = [
        ("Input drift (PSI per feature)", _line_plot("feature PSI", _series(drift, "feature_psi"),
                                                      levels("feature_psi"))),
        ("Missing values per feature", _line_plot("missing share", _series(drift, "feature_missing"),
                                                  levels("feature_missing"))),
        ("Label rates (matured examples)", _line_plot("label rate", _series(drift, "label_rate"), {})),
        ("Default share", _line_plot("share served the default", {
            "unexpected": _series(serving, "default_share").get("default_share", []),
            "all": _series(serving, "default_share_all").get("default_share_all", [])}, levels("default_share"))),
        ("Feedback freshness", _line_plot("hours before the day's end", {
            "newest observation": _series(freshness, "feedback_age_h").get("feedback_age_h", []),
            "ingestion watermark": _series(freshness, "ingest_watermark_age_h").get("ingest_watermark_age_h", [])},
            levels("feedback_age_h"))),
        ("Online reward (mean and 95% interval)", _interval_plot(
            f"realized {blueprint.objectives.maximize}", online,
            ["policy", "default", "holdback", "outside_holdback"])),
        ("Online reward per policy version (mean and 95% interval; hollow: the OPE value at promotion)",
         _png(version_figure(f"realized {blueprint.objectives.maximize} by version", online))),
        ("Holdback lift", _interval_plot("every unit outside the holdback minus the holdback", online,
                                         ["lift_over_holdback"])),
    ]
    alert_rows = "".join(
        f"<tr class='{html.escape(a['severity'])}'><td>{a['date']}</td><td>{html.escape(a['severity'])}</td>"
        f"<td>{html.escape(a['check'])}</td><td>{html.escape(a['subject'] or '')}</td>"
        f"<td>{a['value']:.4g}</td><td>{a['threshold']:.4g}</td></tr>"
        for a in sorted(alerts, key=lambda a: (a["date"], a["check"]), reverse=True)
    ) or "<tr><td colspan='6'>no alert in these 28 days</td></tr>"
    promises = "".join(
        f"<tr><td>{r['date']}</td><td>{html.escape(r['name'])}</td><td>{r['decisions']}</td>"
        f"<td>{_fmt(r['mean'])} [{_fmt(r['lower'])}, {_fmt(r['upper'])}]</td>"
        f"<td>{_fmt(r['ope_estimate'])} [{_fmt(r['ope_lower'])}, {_fmt(r['ope_upper'])}]</td></tr>"
        for r in sorted(online, key=lambda r: r["date"], reverse=True) if r["ope_estimate"] is not None
    ) or "<tr><td colspan='5'>no promoted version with an OPE estimate served yet</td></tr>"
    figures = "".join(f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,{p}'>"
                      for t, p in plots)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Looper monitor: {html.escape(blueprint.name)} {run_date}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:auto}} td,th{{padding:2px 8px}}
tr.critical{{background:#fdd}} tr.warning{{background:#ffd}}</style></head><body>
<h1>{html.escape(blueprint.name)}: monitor for {run_date}</h1>
<p>Blueprint version {blueprint.version}; the 28 days up to {run_date}.</p>
<h2>Alerts</h2><table><tr><th>date</th><th>severity</th><th>check</th><th>subject</th><th>value</th>
<th>threshold</th></tr>{alert_rows}</table>
{figures}
<h2>Did the promise hold? Realized reward next to the OPE estimate at promotion</h2>
<table><tr><th>date</th><th>version</th><th>decisions</th><th>realized</th><th>OPE (DR)</th></tr>{promises}</table>
</body></html>"""


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.4f}"


def write_dashboard(lake: Lake, blueprint: Blueprint, run_date: date, folder: Path) -> Path:
    """Write the page to ``<folder>/<blueprint>/<run_date>/dashboard.html``; returns its path."""
    path = folder / blueprint.name / str(run_date) / "dashboard.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_dashboard(lake, blueprint, run_date))
    return path
