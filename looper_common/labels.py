"""Label windows and aggregation: decisions plus delayed observations to labelled examples.

A label takes the observations named ``label.observation`` that arrive within
``[decision ts, decision ts + window]`` (both ends included) and aggregates them; a
window that closed empty gives the label's default. A decision becomes an example
only once all its windows have closed (it is *mature*); the run for day D takes the
decisions whose longest window closed during D, so every decision matures in
exactly one run and a rerun for D rebuilds exactly the same rows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from looper_common.blueprint import Blueprint
from looper_common.tables import EXAMPLES_SCHEMA

_US = 1_000_000


def day_bounds(run_date: date) -> tuple[datetime, datetime]:
    """``[start, end)`` of a UTC day."""
    start = datetime.combine(run_date, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def maturity_bounds(blueprint: Blueprint, run_date: date) -> tuple[datetime, datetime]:
    """Decision timestamps in ``(lo, hi]`` mature on ``run_date`` (longest window ends in the day)."""
    start, end = day_bounds(run_date)
    window = timedelta(seconds=blueprint.max_window_seconds)
    return start - window, end - window


def label_rules(spark: SparkSession, blueprint: Blueprint) -> DataFrame:
    """One row per label: name, observation, window in microseconds, aggregation, default."""
    rows = [
        (lab.name, lab.observation, lab.window_seconds * _US, lab.aggregation, float(lab.default))
        for lab in blueprint.labels
    ]
    schema = "label string, observation string, window_us long, aggregation string, default double"
    return spark.createDataFrame(rows, schema)


def mature_decisions(decisions: DataFrame, blueprint: Blueprint, run_date: date) -> DataFrame:
    """The blueprint's decisions whose every label window closed during ``run_date``."""
    lo, hi = maturity_bounds(blueprint, run_date)
    return decisions.where(
        (F.col("blueprint") == blueprint.name)
        & F.col("date").between(lo.date(), hi.date())
        & (F.col("ts") > F.lit(lo))
        & (F.col("ts") <= F.lit(hi))
    )


def window_observations(decision_times: DataFrame, observations: DataFrame, rules: DataFrame) -> DataFrame:
    """Observations joined to their decision and label, with the delay and an in-window flag.

    ``decision_times`` has ``decision_id`` and ``decision_ts``.
    """
    joined = (
        observations.join(F.broadcast(rules), observations["name"] == rules["observation"])
        .join(decision_times, "decision_id")
        .withColumn("delay_us", F.unix_micros("ts") - F.unix_micros("decision_ts"))
    )
    return joined.withColumn(
        "in_window", (F.col("delay_us") >= 0) & (F.col("delay_us") <= F.col("window_us"))
    )


def aggregate_labels(in_window: DataFrame) -> DataFrame:
    """Per (decision_id, label): the aggregated value, observation count and first delay."""
    return (
        in_window.groupBy("decision_id", "label", "aggregation")
        .agg(
            F.max((F.col("value") != 0).cast("double")).alias("_any"),
            F.sum("value").alias("_sum"),
            F.count(F.lit(1)).alias("n_observations"),
            F.max("value").alias("_max"),
            F.max_by("value", F.struct("ts", "event_id")).alias("_last"),
            (F.min("delay_us") / _US).alias("first_feedback_s"),
        )
        .select(
            "decision_id",
            "label",
            F.when(F.col("aggregation") == "any", F.col("_any"))
            .when(F.col("aggregation") == "sum", F.col("_sum"))
            .when(F.col("aggregation") == "count", F.col("n_observations").cast("double"))
            .when(F.col("aggregation") == "max", F.col("_max"))
            .otherwise(F.col("_last"))
            .alias("value"),
            "n_observations",
            "first_feedback_s",
        )
    )


def build_examples(
    matured: DataFrame, observations: DataFrame, rules: DataFrame, run_date: date
) -> DataFrame:
    """Matured decisions x labels, each with its label value (or the default), in the silver schema."""
    decision_times = matured.select("decision_id", F.col("ts").alias("decision_ts"))
    joined = window_observations(decision_times, observations, rules)
    values = aggregate_labels(joined.where("in_window"))
    examples = (
        matured.crossJoin(F.broadcast(rules.select("label", "default")))
        .join(values, ["decision_id", "label"], "left")
        .select(
            "*",
            F.coalesce("value", "default").alias("_value"),
            F.coalesce("n_observations", F.lit(0).cast("long")).alias("_n"),
        )
        .drop("value", "n_observations", "default", "date")
        .withColumnsRenamed({"_value": "value", "_n": "n_observations"})
        .withColumn("date", F.lit(run_date).cast(T.DateType()))
    )
    return examples.select(*EXAMPLES_SCHEMA.fieldNames())


def classify_observations(
    day_observations: DataFrame, decisions: DataFrame, rules: DataFrame
) -> DataFrame:
    """Tag each observation of a day: ``in_window``, ``late``, ``early``, ``orphan`` or ``unused``.

    ``late``: after the longest window of any label built from it; ``early``: before its
    decision; ``orphan``: its decision_id is not among ``decisions``; ``unused``: no label
    reads that observation name.
    """
    longest = rules.groupBy("observation").agg(F.max("window_us").alias("window_us"))
    decision_times = decisions.select("decision_id", F.col("ts").alias("decision_ts"))
    joined = (
        day_observations.join(decision_times, "decision_id", "left")
        .join(F.broadcast(longest), day_observations["name"] == longest["observation"], "left")
        .withColumn("delay_us", F.unix_micros("ts") - F.unix_micros("decision_ts"))
    )
    outcome = (
        F.when(F.col("decision_ts").isNull(), "orphan")
        .when(F.col("window_us").isNull(), "unused")
        .when(F.col("delay_us") < 0, "early")
        .when(F.col("delay_us") > F.col("window_us"), "late")
        .otherwise("in_window")
    )
    return joined.select(*day_observations.columns, "delay_us", outcome.alias("outcome"))
