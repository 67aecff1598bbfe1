"""The time-based split every model step shares: train, a validation slice, a later holdout.

``train_models`` fits candidates on ``train``, selects the family and its parameters
(hyperopt, or the uplift learner) on ``valid`` and refits the winner on both;
``evaluate_models`` decides promotion on ``holdout``, which no fit and no selection
step has read. Both jobs call :func:`time_split` on the same window of examples, so
they agree on which rows are the holdout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

HOLDOUT_SHARE = 0.2  # of a single period, when no older examples exist to train on
VALID_SHARE = 0.2  # of the fit part, when it spans a single period


@dataclass(frozen=True)
class TimeSplit:
    """Disjoint slices of the examples, oldest to newest: ``train``, ``valid``, ``holdout``."""

    train: pd.DataFrame
    valid: pd.DataFrame
    holdout: pd.DataFrame

    @property
    def fit(self) -> pd.DataFrame:
        """What the selected model is refitted on: ``train`` and ``valid``, never ``holdout``."""
        return pd.concat([self.train, self.valid])


def _by_time(wide: pd.DataFrame, share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The oldest ``1 - share`` of the rows and the newest ``share``."""
    cut = int(round(len(wide) * (1.0 - share)))
    return wide.iloc[:cut], wide.iloc[cut:]


def time_split(wide: pd.DataFrame, run_date: date) -> TimeSplit:
    """Split the examples of a window ending on ``run_date`` by event time.

    The holdout is the examples that matured on ``run_date``; when nothing older is in
    the window (the first day), it is the newest ``HOLDOUT_SHARE`` of them. Of the rest,
    ``valid`` is the newest matured date (the newest ``VALID_SHARE`` of a single date)
    and ``train`` everything older.
    """
    wide = wide.sort_values(["ts", "decision_id"], kind="stable")
    newest = wide["matured_date"] == run_date
    if newest.all():
        rest, holdout = _by_time(wide, HOLDOUT_SHARE)
    else:
        rest, holdout = wide[~newest], wide[newest]
    dates = sorted(set(rest["matured_date"]))
    if len(dates) >= 2:
        last = rest["matured_date"] == dates[-1]
        train, valid = rest[~last], rest[last]
    else:
        train, valid = _by_time(rest, VALID_SHARE)
    return TimeSplit(train, valid, holdout)
