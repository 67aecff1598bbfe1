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
    assert page.count("data:image/png;base64,") == 7
    assert page.count("<td>20260301-m3-x</td>") == 28  # the promise next to what happened, day by day
    assert "no alert in these 28 days" in page  # the alert of day 29 back is outside the window
    path = write_dashboard(lake, blueprint, DAY, tmp_path / "monitoring")
    assert path.read_text() == page
