"""The input of off-policy evaluation: logged decisions as NumPy columns, checked against the contract.

One entry per logged decision in each column: ``decision_id`` (string),
``action_index`` (int, position of the logged action in the blueprint's actions),
``propensity`` (in (0, 1]), the reward column, optionally ``q_hat`` (the reward
model's prediction per action, for DM and DR), and per candidate policy ``pi_<name>``
with its probability of every action. ``q_hat`` and the ``pi_<name>`` columns are
2-D, (decisions, actions). A missing value is None or NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


class OPEError(ValueError):
    """The logged data cannot be evaluated (bad column, out-of-range propensity...)."""


def policy_column(name: str) -> str:
    """The column with policy ``name``'s probability of every action."""
    return f"pi_{name}"


@dataclass(frozen=True)
class LoggedDecisions:
    """Logged decisions that meet the contract, as typed arrays."""

    decision_id: np.ndarray | Sequence[str]
    action: np.ndarray  # int64, 0 .. actions-1
    propensity: np.ndarray
    reward: np.ndarray
    q_hat: np.ndarray | None  # (decisions, actions)
    pi: dict[str, np.ndarray]  # policy name -> (decisions, actions)
    group: np.ndarray  # int64 code of each decision's group (all 0 without a ``by`` column)
    group_keys: list[object]  # the value of the ``by`` column for each code (None without one)

    @property
    def n(self) -> int:
        return len(self.action)


def _matrix(columns: Mapping[str, object], name: str) -> np.ndarray:
    try:
        array = np.asarray(columns[name], dtype="float64")
    except ValueError:  # rows of different lengths
        array = None
    if array is None or array.ndim != 2:
        raise OPEError(f"column {name!r} must be a 2-D array (decisions, actions), one row per decision")
    return array


def read_logged(
    columns: Mapping[str, np.ndarray | Sequence], by: str | None, policies: Sequence[str], reward: str,
    q_hat: str | None,
) -> LoggedDecisions | None:
    """The logged decisions in ``columns`` as :class:`LoggedDecisions`; None when there are none.

    Raises :class:`OPEError` naming what is wrong: a missing column, columns of
    different lengths, or how many decisions break the contract.
    """
    if not isinstance(columns, Mapping):
        raise OPEError(f"logged decisions must be a mapping of column name to column, got {type(columns).__name__}")
    if by is not None and by not in columns:
        raise OPEError(f"no column {by!r} to group the logged decisions by (have {list(columns)})")
    needed = ["decision_id", "action_index", "propensity", reward, *map(policy_column, policies)]
    missing = [c for c in [*needed, *([q_hat] if q_hat is not None else [])] if c not in columns]
    if missing:
        raise OPEError(f"logged decisions lack column(s) {missing} (have {list(columns)})")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise OPEError(f"the logged decisions' columns differ in length: {lengths}")
    if lengths["decision_id"] == 0:
        return None

    pi = {name: _matrix(columns, policy_column(name)) for name in policies}
    q = _matrix(columns, q_hat) if q_hat is not None else None
    actions = pi[policies[0]].shape[1]
    # None becomes NaN: the missing value of a float column
    propensity, r, action = (np.asarray(columns[c], dtype="float64") for c in ("propensity", reward, "action_index"))
    bad = (
        np.isnan(propensity) | (propensity <= 0) | (propensity > 1) | np.isnan(action) | np.isnan(r)
        | (action < 0) | (action >= actions)
    )
    if any(array.shape[1] != actions for array in [*pi.values(), *([q] if q is not None else [])]):
        bad[:] = True
    if bad.any():
        raise OPEError(
            f"{int(bad.sum())} logged decision(s) have a propensity outside (0, 1], a null {reward!r}, an "
            f"action_index outside 0..{actions - 1} or a probability/q_hat array that is not of "
            f"{actions} actions; fix or filter them before evaluating"
        )
    if by is None:
        group, keys = np.zeros(len(action), dtype=np.int64), [None]
    else:
        group, uniques = pd.factorize(np.asarray(columns[by]), use_na_sentinel=False)
        keys = [None if pd.isna(k) else k for k in uniques.tolist()]
    return LoggedDecisions(
        decision_id=columns["decision_id"], action=action.astype(np.int64), propensity=propensity, reward=r,
        q_hat=q, pi=pi, group=group.astype(np.int64), group_keys=keys,
    )
