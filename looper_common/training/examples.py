"""Silver examples (one row per decision and label) to a wide training table.

One row per decision: its ids, time, served action and propensity, each blueprint
feature as a typed column, and each label as a column. Validation, training,
evaluation and publishing all read examples through this one function.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from looper_common.contracts.blueprint import Blueprint
from looper_common.lake.delta_read import blueprint_dates, read_table
from looper_common.lake.spark import SessionSource
from looper_common.lake.tables import SILVER_EXAMPLES, Lake

MISSING = "__missing__"
SPARK_TYPES = {"float": "double", "int": "bigint", "bool": "boolean", "category": "string"}
ARROW_TYPES = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "category": pa.string()}
DECISION_COLUMNS = (
    "decision_id", "unit_id", "ts", "blueprint_version", "action", "propensity",
    "action_probs", "policy_version", "is_default",
)


def feature_columns(features: DataFrame | F.Column, blueprint: Blueprint) -> list[F.Column]:
    """Typed columns from the logged ``features`` map, named after the blueprint's features."""
    source = F.col("features") if isinstance(features, DataFrame) else features
    return [source[f.name].cast(SPARK_TYPES[f.type]).alias(f.name) for f in blueprint.features]


def examples_wide(
    examples: DataFrame, blueprint: Blueprint, *, until: date | None = None, since: date | None = None
) -> DataFrame:
    """Pivot a blueprint's silver examples to one row per decision (optionally by matured date)."""
    rows = examples.where(F.col("blueprint") == blueprint.name)
    if since is not None:
        rows = rows.where(F.col("date") >= F.lit(since))
    if until is not None:
        rows = rows.where(F.col("date") <= F.lit(until))
    labels = [label.name for label in blueprint.labels]
    wide = rows.groupBy("decision_id").agg(
        *[F.first(c).alias(c) for c in DECISION_COLUMNS if c != "decision_id"],
        F.first("features").alias("features"),
        F.first("date").alias("matured_date"),
        *[F.max(F.when(F.col("label") == name, F.col("value"))).alias(name) for name in labels],
    )
    return wide.select(
        *DECISION_COLUMNS, "matured_date", *feature_columns(wide, blueprint), *labels
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
    """:func:`feature_columns` in Arrow: each feature from the logged map, cast to its type.

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


def spark_like_pandas(table: pa.Table) -> pd.DataFrame:
    """``table`` as ``DataFrame.toPandas()`` gives it (UTC session): naive timestamps, dates and maps as objects."""
    columns = []
    for field in table.schema:
        column = table.column(field.name)
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            column = column.cast(pa.timestamp(field.type.unit))  # the UTC wall time, as Spark's UTC session
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names).to_pandas(
        date_as_object=True, maps_as_pydicts="strict", coerce_temporal_nanoseconds=True
    )


def examples_wide_arrow(rows: pa.Table, blueprint: Blueprint) -> pd.DataFrame:
    """:func:`examples_wide` of silver example rows already read (the partitions wanted), as pandas."""
    labels = [label.name for label in blueprint.labels]
    rows = rows.filter(pc.equal(rows["blueprint"], blueprint.name))
    ids = rows["decision_id"].to_numpy(zero_copy_only=False)
    unique, first, decision = np.unique(ids, return_index=True, return_inverse=True)
    decisions = rows.take(pa.array(first))
    # one label row per (decision, label): max, like the Spark pivot, should a key repeat
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
    return spark_like_pandas(wide)


@dataclass(frozen=True)
class TrainingFrame:
    """Wide examples as pandas, the ``silver/examples`` version they were read at, and by what."""

    frame: pd.DataFrame
    version: int
    engine: str  # "arrow" (read from the Delta log without Spark) or "spark"


def load_training_frame(
    lake: Lake, blueprint: Blueprint, run_date: date, lookback_days: int = 28, *,
    spark: SessionSource,
) -> TrainingFrame:
    """Wide examples that matured in the lookback window up to the run date, as pandas.

    Up to the lake's ``pyarrow_max_bytes`` of Parquet on a local lake are read from the
    Delta log with pyarrow (``delta_read``); otherwise, or when the table needs it, with
    ``spark()`` (a session or a ``LazySession``, only called then).
    """
    since, until = run_date - timedelta(days=lookback_days), run_date
    local = read_table(lake, SILVER_EXAMPLES, where=blueprint_dates(blueprint.name, since, until))
    if local is not None:
        wide = examples_wide_arrow(local.table, blueprint)
        return TrainingFrame(wide.sort_values(["ts", "decision_id"], ignore_index=True), local.version, "arrow")
    session = spark()
    version = lake.version(session, SILVER_EXAMPLES)
    examples = (
        session.read.format("delta").option("versionAsOf", version).load(lake.path(SILVER_EXAMPLES))
        .where(F.col("blueprint") == blueprint.name)
    )
    wide = examples_wide(examples, blueprint, since=since, until=until).toPandas()
    return TrainingFrame(wide.sort_values(["ts", "decision_id"], ignore_index=True), version, "spark")
