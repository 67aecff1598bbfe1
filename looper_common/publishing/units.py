"""Every unit a blueprint decided for, with its latest logged features: what publishing scores."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from looper_common.contracts.blueprint import Blueprint
from looper_common.labels.days import day_bounds
from looper_common.lake.engine import Lake, blueprint_dates
from looper_common.lake.frames import to_pandas
from looper_common.lake.tables import BRONZE_DECISIONS, TIMESTAMP
from looper_common.training.examples import ARROW_TYPES, typed_features

UNIT_COLUMNS = ("unit_id", "ts", "decision_id", "features")


def units_schema(blueprint: Blueprint) -> pa.Schema:
    """``unit_id``, ``features_ts`` and each feature in its type."""
    return pa.schema([("unit_id", pa.string()), ("features_ts", TIMESTAMP),
                      *[(f.name, ARROW_TYPES[f.type]) for f in blueprint.features]])


def latest_units(decisions: pa.Table, blueprint: Blueprint, run_date: date) -> pa.Table:
    """One row per unit decided for before the end of ``run_date``: its latest decision's features.

    Latest by decision time, ties broken by decision id. ``decisions`` holds every
    decision of each unit it contains (the lake groups them by unit).
    """
    _, end = day_bounds(run_date)
    decisions = decisions.filter(pc.less(decisions["ts"], pa.scalar(end, decisions.schema.field("ts").type)))
    # the last row of each unit in (unit, ts, decision id) order is its latest decision
    ordered = decisions.take(pc.sort_indices(
        decisions, sort_keys=[("unit_id", "ascending"), ("ts", "ascending"), ("decision_id", "ascending")]))
    units = ordered["unit_id"].to_numpy(zero_copy_only=False)
    last = np.flatnonzero(np.append(units[1:] != units[:-1], True)) if len(units) else np.array([], "int64")
    latest = ordered.take(pa.array(last, pa.int64()))
    return pa.table({
        "unit_id": latest["unit_id"], "features_ts": latest["ts"], **typed_features(latest["features"], blueprint),
    }, schema=units_schema(blueprint))


def load_units(lake: Lake, blueprint: Blueprint, run_date: date) -> pd.DataFrame:
    """:func:`latest_units` of the blueprint's decisions up to ``run_date``, as pandas."""
    table = lake.map_groups(
        BRONZE_DECISIONS, lambda rows: latest_units(rows, blueprint, run_date), key="unit_id",
        schema=units_schema(blueprint), filters=blueprint_dates(blueprint.name, last=run_date),
        columns=UNIT_COLUMNS,
    )
    return to_pandas(table)
