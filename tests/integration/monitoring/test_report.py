"""The monitor's line per day (what `make demo` prints), read back from the monitoring tables."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from looper_common.lake.engine import Lake
from looper_common.lake.tables import MONITOR_ALERTS, MONITOR_ONLINE_VALUE, MONITOR_SERVING, ONLINE_VALUE_SCHEMA
from looper_common.monitoring.alerts import Alert, alert_rows
from looper_common.monitoring.metrics import Metric, metric_rows
from looper_common.monitoring.report import day_line

pytestmark = pytest.mark.integration
BLUEPRINT = "notification_send"
DAY = date(2026, 1, 5)


def test_the_line_lists_alerts_default_share_reward_and_lift(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    lake.ensure_tables()
    where = {"blueprint": BLUEPRINT, "date": DAY}
    lake.replace_partition(MONITOR_ALERTS, alert_rows([
        Alert("feature_psi", "country", 0.1234, 0.1, "warning"),
        Alert("default_share", None, 0.44912, 0.3, "critical")], BLUEPRINT, DAY), where)
    lake.replace_partition(MONITOR_SERVING, metric_rows([Metric("default_share", 0.44912),
                                                         Metric("default_share_all", 0.5037)], BLUEPRINT, "v", DAY),
                           where)
    rows = [{"blueprint": BLUEPRINT, "name": name, "label": "clicked", "decisions": 1000, "mean": mean,
             "lower": lower, "upper": upper, "blueprint_version": "v", "date": DAY}
            for name, mean, lower, upper in (("policy", 0.31234, 0.29, 0.33456), ("holdback", 0.2, 0.15, 0.25),
                                             ("lift_over_holdback", 0.1012, 0.05, 0.15))]
    lake.replace_partition(MONITOR_ONLINE_VALUE, pa.Table.from_pylist(rows, schema=ONLINE_VALUE_SCHEMA), where)
    assert day_line(lake, BLUEPRINT, DAY) == (
        "alerts: critical default_share=0.449, warning feature_psi:country=0.123; default share 50.4%; "
        "policy reward 0.3123 [0.2900, 0.3346]; lift over holdback 0.1012 [0.0500, 0.1500]")
    # another blueprint's rows, or another day's, are not this line's
    assert day_line(lake, "feed_layout", DAY) == day_line(lake, BLUEPRINT, date(2026, 1, 6)) == (
        "alerts: none; default share n/a; policy reward n/a; lift over holdback n/a")
