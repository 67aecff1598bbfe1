"""Data flow: feedback and ingestion freshness, feedback delays, matured, late, orphan and quarantined rates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from looper_common.contracts.blueprint import MonitoringSpec
from looper_common.lake.tables import JOIN_STATS_SCHEMA
from looper_common.monitoring.alerts import evaluate_alerts
from looper_common.monitoring.flow import feedback_flow

DAY = date(2026, 3, 2)


def _ts(*hours: float) -> pa.ChunkedArray:
    """Observation times ``hours`` after the start of DAY."""
    start = datetime(2026, 3, 2, tzinfo=UTC)
    return pa.chunked_array([[start + timedelta(hours=h) for h in hours]], pa.timestamp("us", tz="UTC"))


def _examples(delays: list[float | None]) -> pa.Table:
    return pa.table({"first_feedback_s": pa.array(delays, pa.float64())})


def _join_stats(**row: int) -> pa.Table:
    base = {"blueprint": "t_notify", "blueprint_version": "v", "examples": 0, "matured_decisions": 0,
            "observations_in_window": 0, "late_observations": 0, "early_observations": 0,
            "orphan_observations": 0, "median_feedback_delay_s": None, "date": DAY}
    full = {**base, **row}
    return pa.Table.from_pylist([{f.name: full.get(f.name) for f in JOIN_STATS_SCHEMA}], schema=JOIN_STATS_SCHEMA)


def _values(metrics) -> dict[str, float | None]:
    return {m.name: m.value for m in metrics}


def test_freshness_delays_and_rates_of_a_day():
    metrics = feedback_flow(DAY, _ts(1.0, 20.0, 18.5), decisions=800, observations_today=300,
                            examples=_examples([10.0, 20.0, 30.0, None, 40.0]),
                            join_stats=_join_stats(matured_decisions=600, observations_in_window=180,
                                                   late_observations=20, orphan_observations=40),
                            quarantined=11)
    values = _values(metrics)
    assert values["feedback_age_h"] == 4.0  # newest at 20:00, the day ends at 24:00
    assert values["observations"] == 300
    assert values["feedback_delay_median_s"] == 25.0  # of the four known delays
    assert values["feedback_delay_p95_s"] == 38.5
    assert values["matured_decisions"] == 600 and values["matured_share"] == 0.75
    assert values["late_rate"] == 0.1  # 20 / (180 + 20)
    assert values["orphan_rate"] == 40 / 240
    assert values["quarantine_rate"] == 11 / (800 + 300 + 11)
    assert "ingest_watermark_age_h" not in values  # no watermark recorded: nothing to report


def test_a_day_without_feedback_or_join_reports_nothing_it_cannot_know():
    values = _values(feedback_flow(DAY, _ts(), decisions=0, observations_today=0, examples=_examples([]),
                                   join_stats=_join_stats().slice(0, 0), quarantined=0))
    assert values == {"feedback_age_h": None, "observations": 0.0, "feedback_delay_median_s": None,
                      "feedback_delay_p95_s": None, "quarantine_rate": None}


def test_the_watermark_age_counts_the_hours_ingestion_stands_before_the_day_end():
    def age(watermark: datetime) -> float | None:
        return _values(feedback_flow(DAY, _ts(23.0), 10, 10, _examples([]), _join_stats().slice(0, 0), 0,
                                     watermark))["ingest_watermark_age_h"]

    assert age(datetime(2026, 3, 2, 14, 30, tzinfo=UTC)) == 9.5
    assert age(datetime(2026, 3, 3, 0, 0, tzinfo=UTC)) == 0.0
    assert age(datetime(2026, 3, 9, tzinfo=UTC)) == 0.0  # past the day's end: the day is all in the lake
    # the default levels: a warning past 1 h, critical past 6 h
    late = feedback_flow(DAY, _ts(23.0), 10, 10, _examples([]), _join_stats().slice(0, 0), 0,
                         datetime(2026, 3, 2, 14, 30, tzinfo=UTC))
    [alert] = evaluate_alerts(MonitoringSpec(), late, [])
    assert (alert.check, alert.value, alert.severity, alert.threshold) == ("ingest_watermark_age_h", 9.5,
                                                                           "critical", 6.0)
    slight = feedback_flow(DAY, _ts(23.0), 10, 10, _examples([]), _join_stats().slice(0, 0), 0,
                           datetime(2026, 3, 2, 22, 0, tzinfo=UTC))
    assert [(a.check, a.severity) for a in evaluate_alerts(MonitoringSpec(), slight, [])] == [
        ("ingest_watermark_age_h", "warning")]
