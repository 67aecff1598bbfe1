"""Silver examples (one row per decision and label) to a wide training table.

One row per decision: its ids, time, served action and propensity, each blueprint
feature as a typed column, and each label as a column. Validation, training,
evaluation and publishing all read examples through this one function.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from looper_common.blueprint import Blueprint
from looper_common.tables import SILVER_EXAMPLES, Lake

MISSING = "__missing__"
SPARK_TYPES = {"float": "double", "int": "bigint", "bool": "boolean", "category": "string"}
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


def load_training_frame(
    spark: SparkSession, lake: Lake, blueprint: Blueprint, run_date: date, lookback_days: int = 28
) -> pd.DataFrame:
    """Wide examples that matured in the lookback window up to the run date, as pandas."""
    examples = lake.read(spark, SILVER_EXAMPLES).where(f"blueprint = '{blueprint.name}'")
    wide = examples_wide(
        examples, blueprint, since=run_date - timedelta(days=lookback_days), until=run_date
    )
    return wide.toPandas().sort_values(["ts", "decision_id"], ignore_index=True)
