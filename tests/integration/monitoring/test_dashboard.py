"""The dashboard plots what the monitoring tables hold, intervals and alerts included (delta-rs lake)."""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa
import pytest

from looper_common.lake.engine import Lake
from looper_common.lake.tables import MONITOR_ALERTS, MONITOR_DRIFT, MONITOR_ONLINE_VALUE, ONLINE_VALUE_SCHEMA
from looper_common.monitoring.alerts import Alert, alert_rows
from looper_common.monitoring.dashboard import render_dashboard, write_dashboard
from looper_common.monitoring.metrics import Metric, metric_rows
from tests.conftest import make_blueprint

pytestmark = pytest.mark.integration
DAY = date(2026, 3, 10)


def test_the_page_shows_28_days_of_reward_intervals_alerts_and_the_ope_promise(tmp_path):
    blueprint = make_blueprint(holdback={"share": 0.1})
    lake = Lake(str(tmp_path / "lake"))
    lake.ensure_tables()
    for back in range(30):
        day = DAY - timedelta(days=back)
        where = {"blueprint": blueprint.name, "date": day}
        rows = [{"blueprint": blueprint.name, "name": name, "label": "clicked", "decisions": 1000, "mean": mean,
                 "lower": mean - 0.02, "upper": mean + 0.02, "ope_estimate": 0.31 if name == "20260301-m3-x" else None,
                 "ope_lower": 0.29, "ope_upper": 0.33, "blueprint_version": blueprint.version, "date": day}
                for name, mean in (("20260301-m3-x", 0.3), ("policy", 0.3), ("holdback", 0.2),
                                   ("lift_over_holdback", 0.1))]
        lake.replace_partition(MONITOR_ONLINE_VALUE, pa.Table.from_pylist(rows, schema=ONLINE_VALUE_SCHEMA), where)
        lake.replace_partition(MONITOR_DRIFT, metric_rows([Metric("feature_psi", 0.01 * back, "recency")],
                                                          blueprint.name, blueprint.version, day), where)
    lake.replace_partition(MONITOR_ALERTS, alert_rows([Alert("feature_psi", "recency", 0.29, 0.25, "critical")],
                                                      blueprint.name, DAY - timedelta(days=29)),
                           {"blueprint": blueprint.name, "date": DAY - timedelta(days=29)})
    page = render_dashboard(lake, blueprint, DAY)
    assert page.count("data:image/png;base64,") == 8
    assert page.count("<td>20260301-m3-x</td>") == 28  # the promise next to what happened, day by day
    assert "no alert in these 28 days" in page  # the alert of day 29 back is outside the window
    path = write_dashboard(lake, blueprint, DAY, tmp_path / "monitoring")
    assert path.read_text() == page


def test_the_version_plot_shows_each_versions_reward_interval_and_its_ope_promise():
    from looper_common.monitoring.dashboard import version_figure

    def row(name, day, mean, ope=None):
        return {"name": name, "date": day, "mean": mean, "lower": mean and mean - 0.02, "upper": mean and mean + 0.03,
                "ope_estimate": ope, "ope_lower": None if ope is None else ope - 0.01,
                "ope_upper": None if ope is None else ope + 0.01}

    rows = [row("20260301-m3-a", DAY - timedelta(days=1), 0.30, ope=0.33), row("20260301-m3-a", DAY, 0.31, ope=0.33),
            row("20260310-m4-b", DAY, 0.35), row("policy", DAY, 0.32), row("lift_over_holdback", DAY, 0.1),
            row("20260311-m5-c", DAY, None)]  # nothing matured for it yet: not drawn
    fig = version_figure("t", rows)
    ax = fig.axes[0]
    assert ax.get_legend_handles_labels()[1] == ["20260301-m3-a", "OPE at promotion (hollow)", "20260310-m4-b"]
    realized_a, promise_a, realized_b = ax.containers
    assert list(realized_a.lines[0].get_ydata()) == [0.30, 0.31]
    assert list(promise_a.lines[0].get_ydata()) == [0.33, 0.33]
    assert list(realized_b.lines[0].get_ydata()) == [0.35]
    # the interval: from the lower to the upper bound
    segments = realized_b.lines[2][0].get_segments()
    assert [round(y, 6) for y in segments[0][:, 1]] == [0.33, 0.38]
    empty = version_figure("t", [row("policy", DAY, 0.3)])
    assert empty.axes[0].texts[0].get_text() == "no policy version served in these days"
