"""Arrival lag and outage of the simulator's observations, and their ``looper simulate`` options."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from looper_common.simulate.arrival import Arrival
from looper_common.simulate.command import add_arguments

NOON = datetime(2026, 3, 2, 12, tzinfo=UTC)
NOON_MS = int(NOON.timestamp() * 1000)


def test_lag_holds_back_what_happened_within_it():
    assert Arrival().cutoff_ms(NOON_MS) == NOON_MS
    assert Arrival(lag=timedelta(hours=3)).cutoff_ms(NOON_MS) == NOON_MS - 3 * 3_600_000


def test_an_outage_sends_nothing_then_everything_due():
    arrival = Arrival(lag=timedelta(hours=1), outage=(NOON - timedelta(hours=6), NOON + timedelta(hours=6)))
    assert arrival.cutoff_ms(NOON_MS) < 0  # no event time is before it
    assert arrival.cutoff_ms(NOON_MS + 6 * 3_600_000) == NOON_MS + 5 * 3_600_000  # the outage's end: all due go


def test_bad_arrivals_are_refused():
    with pytest.raises(ValueError, match="negative"):
        Arrival(lag=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="end after"):
        Arrival(outage=(NOON, NOON))


def test_command_line_options():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--blueprint", "b", "--arrival-lag", "3h", "--outage", "2026-03-02T06:00/2026-03-03T06:00"])
    assert args.arrival_lag == timedelta(hours=3)
    assert args.outage == (datetime(2026, 3, 2, 6, tzinfo=UTC), datetime(2026, 3, 3, 6, tzinfo=UTC))
    with pytest.raises(SystemExit):
        parser.parse_args(["--blueprint", "b", "--outage", "2026-03-03/2026-03-02"])
