"""UTC days and the decision times that mature in one (pure ``datetime``: no Spark to import)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from looper_common.contracts.blueprint import Blueprint


def day_bounds(run_date: date) -> tuple[datetime, datetime]:
    """``[start, end)`` of a UTC day."""
    start = datetime.combine(run_date, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def maturity_bounds(blueprint: Blueprint, run_date: date) -> tuple[datetime, datetime]:
    """Decision timestamps in ``(lo, hi]`` mature on ``run_date`` (longest window ends in the day)."""
    start, end = day_bounds(run_date)
    window = timedelta(seconds=blueprint.max_window_seconds)
    return start - window, end - window
