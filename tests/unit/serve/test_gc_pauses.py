"""The serving process's GC settings and pause timing."""

from __future__ import annotations

import gc

from looper_common.serve.gc_pauses import GcPauses, freeze_startup_heap
from looper_common.serve.logs import DurationHistogram


def test_freeze_moves_the_heap_to_the_permanent_generation_and_raises_gen0():
    threshold = gc.get_threshold()
    try:
        frozen = freeze_startup_heap(gen0_threshold=12_345)
        # at least what it froze: another thread of the test process (a library's) may freeze more meanwhile
        assert gc.get_freeze_count() >= frozen > 1_000
        assert gc.get_threshold()[0] == 12_345
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_pauses_are_counted_and_timed_per_generation():
    pauses = GcPauses()
    pauses.install()
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        pauses.uninstall()
    gc.collect(2)  # not counted: uninstalled
    summary = pauses.summary()
    assert summary["gc_collections"][0] >= 1 and summary["gc_collections"][2] == 1
    assert summary["gc_max_pause_ms"][2] > 0 and summary["gc_total_pause_ms"][2] >= summary["gc_max_pause_ms"][2]


def test_duration_percentiles_are_within_a_bin():
    hist = DurationHistogram()
    for ms in range(1, 101):  # 1..100 ms
        hist.add(float(ms))
    hist.add(5_000.0)  # beyond the bins: the maximum
    summary = hist.summary()
    assert summary["requests"] == 101 and summary["max_ms"] == 5_000.0
    assert abs(summary["p50_ms"] - 51.0) <= 0.011 and abs(summary["p90_ms"] - 91.0) <= 0.011
    assert hist.percentile(100) == 5_000.0
    assert DurationHistogram().summary() == {"requests": 0}
