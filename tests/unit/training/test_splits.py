"""The time split shared by training and evaluation: disjoint, ordered, the holdout last."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from looper_common.training.splits import HOLDOUT_SHARE, time_split

RUN_DATE = date(2026, 2, 3)


def examples(days: list[int], per_day: int = 50) -> pd.DataFrame:
    rows = []
    for back in days:
        day = RUN_DATE - timedelta(days=back)
        for i in range(per_day):
            ts = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=12) + timedelta(seconds=i)
            rows.append({"decision_id": f"{day}-{i:03d}", "ts": ts, "matured_date": day})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # the split must not rely on the order


def ids(frame: pd.DataFrame) -> set[str]:
    return set(frame["decision_id"])


@pytest.mark.parametrize("days", [[4, 3, 2, 1, 0], [1, 0], [0], [3, 2, 1]])
def test_the_three_slices_are_disjoint_cover_the_window_and_follow_in_time(days):
    wide = examples(days)
    split = time_split(wide, RUN_DATE)
    assert not ids(split.train) & ids(split.valid)
    assert not ids(split.holdout) & (ids(split.train) | ids(split.valid))
    assert ids(split.train) | ids(split.valid) | ids(split.holdout) == ids(wide)
    assert ids(split.fit) == ids(split.train) | ids(split.valid)
    assert len(split.train) and len(split.valid)
    assert split.train["ts"].max() < split.valid["ts"].min()
    if len(split.holdout):
        assert split.valid["ts"].max() < split.holdout["ts"].min()


def test_the_holdout_is_the_run_date_and_validation_the_newest_date_before_it():
    split = time_split(examples([4, 3, 2, 1, 0]), RUN_DATE)
    assert set(split.holdout["matured_date"]) == {RUN_DATE}
    assert set(split.valid["matured_date"]) == {RUN_DATE - timedelta(days=1)}
    assert max(split.train["matured_date"]) == RUN_DATE - timedelta(days=2)


def test_the_first_day_holds_out_its_newest_share_and_without_run_date_rows_nothing():
    split = time_split(examples([0], per_day=100), RUN_DATE)
    assert len(split.holdout) == 100 * HOLDOUT_SHARE
    assert sorted(split.holdout["decision_id"]) == [f"{RUN_DATE}-{i:03d}" for i in range(80, 100)]
    assert time_split(examples([3, 2, 1]), RUN_DATE).holdout.empty
