"""read_ahead yields what the producer made, in order, and raises its errors in the caller."""

from __future__ import annotations

import pytest

from looper_common.ingest.read_ahead import read_ahead


def _counter(limit: int, fail_at: int | None = None):
    made = []

    def produce():
        if fail_at is not None and len(made) == fail_at:
            raise ValueError("broken stream")
        if len(made) == limit:
            return None
        made.append(len(made))
        return made[-1]

    return produce, made


def test_items_in_order_and_at_most_one_ahead():
    produce, made = _counter(5)
    seen = []
    for item in read_ahead(produce):
        seen.append(item)
        assert len(made) <= item + 3  # this one, the one waiting, the one being made
    assert seen == [0, 1, 2, 3, 4]


def test_an_error_in_the_producer_is_raised_in_the_caller():
    produce, _ = _counter(5, fail_at=2)
    with pytest.raises(ValueError, match="broken stream"):
        list(read_ahead(produce))


def test_stopping_early_ends_the_thread():
    produce, made = _counter(1000)
    for item in read_ahead(produce):
        if item == 1:
            break
    assert len(made) <= 4
