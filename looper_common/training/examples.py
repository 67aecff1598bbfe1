"""Silver examples (one row per decision and label) to a wide training table.

One row per decision: its ids, time, served action and propensity, each blueprint
feature as a typed column, and each label as a column. Validation, training,
evaluation and tuning all read examples through :func:`load_training_frame`; the lake
decides which engine reads the rows, the pivot below is the one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from looper_common.contracts.blueprint import Blueprint
from looper_common.lake.delta import sample_filter
from looper_common.lake.engine import Lake, blueprint_dates
from looper_common.lake.frames import to_pandas
from looper_common.lake.tables import SILVER_EXAMPLES

MISSING = "__missing__"
ARROW_TYPES = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "category": pa.string()}
DECISION_COLUMNS = (
    "decision_id", "unit_id", "ts", "blueprint_version", "action", "propensity",
    "action_probs", "policy_version", "is_default",
)

def to_model_frame(wide: pd.DataFrame, blueprint: Blueprint, action: str | None = None) -> pd.DataFrame:
    """Model input: the blueprint's features plus ``action`` (categories as strings, numbers as floats).

    ``action`` overrides the served action, to score what another action would do.
    """
    frame = pd.DataFrame(index=wide.index)
    for feature in blueprint.features:
        column = wide[feature.name]
        if feature.type == "category":
            frame[feature.name] = column.astype("object").where(column.notna(), MISSING).astype(str)
        else:
            frame[feature.name] = column.astype("float64")
    frame["action"] = action if action is not None else wide["action"].astype(str)
    return frame


def typed_features(features: pa.Array | pa.ChunkedArray, blueprint: Blueprint) -> dict[str, pa.Array]:
    """Each feature from the logged map, cast to its type.

    A value that does not parse as its type becomes null, as validation expects.
    """
    columns = {}
    for feature in blueprint.features:
        text = pc.map_lookup(features, pa.scalar(feature.name), "first")
        try:
            columns[feature.name] = pc.cast(text, ARROW_TYPES[feature.type])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = pd.Series(text.to_pandas(), dtype="object")
            if feature.type == "bool":
                parsed = values.map({"true": True, "false": False}, na_action="ignore")
            else:
                parsed = pd.to_numeric(values, errors="coerce")
            columns[feature.name] = pa.array(parsed, ARROW_TYPES[feature.type], from_pandas=True)
    return columns


def examples_wide(rows: pa.Table, blueprint: Blueprint) -> pd.DataFrame:
    """Silver example rows (the partitions wanted) pivoted to one row per decision, as pandas."""
    labels = [label.name for label in blueprint.labels]
    rows = rows.filter(pc.equal(rows["blueprint"], blueprint.name))
    ids = rows["decision_id"].to_numpy(zero_copy_only=False)
    unique, first, decision = np.unique(ids, return_index=True, return_inverse=True)
    decisions = rows.take(pa.array(first))
    # one label row per (decision, label): the largest value, should a key repeat
    values = np.full((len(unique), len(labels)), np.nan)
    label_of = rows["label"].to_numpy(zero_copy_only=False)
    value = rows["value"].to_numpy(zero_copy_only=False)
    for j, name in enumerate(labels):
        at = label_of == name
        np.fmax.at(values[:, j], decision[at], value[at])
    features = typed_features(decisions["features"], blueprint)
    wide = pa.table({
        **{c: decisions[c] for c in DECISION_COLUMNS},
        "matured_date": decisions["date"],
        **features,
        **{name: pa.array(values[:, j], pa.float64(), mask=np.isnan(values[:, j])) for j, name in enumerate(labels)},
    })
    return to_pandas(wide)


@dataclass(frozen=True)
class TrainingFrame:
    """Wide examples as pandas, the ``silver/examples`` version they were read at, and by which engine.

    ``sampled_from`` is the number of example rows the window held when only a sample
    of its decisions was read (see :func:`load_training_frame`); None when all were.
    """

    frame: pd.DataFrame
    version: int
    engine: str
    sampled_from: int | None = None


def load_training_frame(
    lake: Lake, blueprint: Blueprint, run_date: date, lookback_days: int | None = 28,
    max_rows: int | None = None,
) -> TrainingFrame:
    """Wide examples that matured in the lookback window up to the run date (all of them with None).

    When the window holds more than ``max_rows`` example rows (``training.max_examples``),
    a sample of its decisions is read instead, about ``max_rows`` rows: each decision is
    in it or not by the MD5 of its id (``delta.sample_filter``), so all its labels come
    together, a rerun reads the same sample, and the time split still sees every day.
    The filter runs where the rows are read (delta-rs, or Spark's executors), so no more
    than the sample reaches this process.
    """
    since = run_date - timedelta(days=lookback_days) if lookback_days is not None else None
    filters = blueprint_dates(blueprint.name, since, run_date)
    total = lake.selected_rows(SILVER_EXAMPLES, filters) if max_rows is not None else 0
    sampled = max_rows is not None and total > max_rows
    if sampled:
        filters = [*filters, sample_filter("decision_id", max_rows / total)]
    read = lake.read(SILVER_EXAMPLES, filters=filters)
    wide = examples_wide(read.table, blueprint)
    return TrainingFrame(wide.sort_values(["ts", "decision_id"], ignore_index=True), read.version, read.engine,
                         total if sampled else None)
