"""Label windows and aggregation: decisions plus delayed observations to labelled examples.

A label takes the observations named ``label.observation`` that arrive within
``[decision ts, decision ts + window]`` (both ends included) and aggregates them; a
window that closed empty gives the label's default. A decision becomes an example
only once all its windows have closed (it is *mature*); the run for day D takes the
decisions whose longest window closed during D, so every decision matures in
exactly one run and a rerun for D rebuilds exactly the same rows.
"""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from looper_common.contracts.blueprint import Blueprint
from looper_common.labels.days import maturity_bounds
from looper_common.lake.tables import SILVER_EXAMPLES

_US = 1_000_000


def label_rules(spark: SparkSession, blueprint: Blueprint) -> DataFrame:
    """One row per label: name, observation, window in microseconds, aggregation, default."""
    rows = [
        (lab.name, lab.observation, lab.window_seconds * _US, lab.aggregation, float(lab.default))
        for lab in blueprint.labels
    ]
    schema = "label string, observation string, window_us long, aggregation string, default double"
    return spark.createDataFrame(rows, schema)


def _matures(ts: Column, day: Column, lo: datetime, hi: datetime) -> Column:
    """Decision time in ``(lo, hi]`` (and its date partition in range, so files are pruned)."""
    return day.between(lo.date(), hi.date()) & (ts > F.lit(lo)) & (ts <= F.lit(hi))


def mature_decisions(decisions: DataFrame, blueprint: Blueprint, run_date: date) -> DataFrame:
    """The blueprint's decisions whose every label window closed during ``run_date``."""
    lo, hi = maturity_bounds(blueprint, run_date)
    return decisions.where((F.col("blueprint") == blueprint.name) & _matures(F.col("ts"), F.col("date"), lo, hi))


def link_decisions(observations: DataFrame, decisions: DataFrame) -> DataFrame:
    """Observations with their decision's ``decision_ts`` and ``decision_date`` (null if unknown).

    Only ids and times of the decisions take part, so the shuffle stays narrow; the result
    serves both the label values and the classification of the day's observations.
    """
    times = decisions.select("decision_id", F.col("ts").alias("decision_ts"), F.col("date").alias("decision_date"))
    return observations.join(times, "decision_id", "left")


def label_values(linked: DataFrame, rules: DataFrame, blueprint: Blueprint, run_date: date) -> DataFrame:
    """Per (decision_id, label) of the decisions maturing on ``run_date``: value, count, first delay.

    ``linked`` comes from :func:`link_decisions`; observations outside every window are dropped.
    """
    lo, hi = maturity_bounds(blueprint, run_date)
    matured = linked.where(_matures(F.col("decision_ts"), F.col("decision_date"), lo, hi))
    joined = matured.join(F.broadcast(rules), matured["name"] == rules["observation"]).withColumn(
        "delay_us", F.unix_micros("ts") - F.unix_micros("decision_ts")
    )
    return aggregate_labels(joined.where((F.col("delay_us") >= 0) & (F.col("delay_us") <= F.col("window_us"))))


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


def fold_labels(values: DataFrame) -> DataFrame:
    """One row per decision with feedback: ``decision_id`` and a map label -> (value, count, first delay).

    ``values`` comes from :func:`label_values`; folded like this, the wide decision rows are
    joined once, not once per label.
    """
    return values.groupBy("decision_id").agg(
        F.map_from_entries(
            F.collect_list(F.struct("label", F.struct("value", "n_observations", "first_feedback_s")))
        ).alias("_labels")
    )


def build_examples(
    matured: DataFrame, folded: DataFrame, rules: DataFrame, run_date: date, *, broadcast: bool = False
) -> DataFrame:
    """Matured decisions x labels, each with its label value (or the default), in the silver schema.

    ``folded`` comes from :func:`fold_labels`. The labels are crossed in after the join,
    locally. With ``broadcast`` the folded values (narrow: an id and a small map) are
    shipped whole to every task, so the wide decision rows (features, scores) are read and
    written without being shuffled or sorted at all; without it, both sides are shuffled
    on ``decision_id``.
    """
    found = F.col("_labels")[F.col("label")]
    examples = (
        matured.join(F.broadcast(folded) if broadcast else folded, "decision_id", "left")
        .crossJoin(F.broadcast(rules.select("label", "default")))
        .select(
            "*",
            F.coalesce(found["value"], "default").alias("value"),
            F.coalesce(found["n_observations"], F.lit(0).cast("long")).alias("n_observations"),
            found["first_feedback_s"].alias("first_feedback_s"),
        )
        .drop("_labels", "default", "date")
        .withColumn("date", F.lit(run_date).cast(T.DateType()))
    )
    return examples.select(*SILVER_EXAMPLES.columns)


def classify_observations(day_observations: DataFrame, older_decisions: DataFrame, rules: DataFrame) -> DataFrame:
    """Tag each observation of a day: ``in_window``, ``late``, ``early``, ``orphan`` or ``unused``.

    ``late``: after the longest window of any label built from it; ``early``: before its
    decision; ``orphan``: its decision_id is not among the decisions; ``unused``: no label
    reads that observation name. ``day_observations`` come from :func:`link_decisions`
    against the recent decisions (from the run date minus the longest window on, up to the
    run date); those that found none are looked up by id in ``older_decisions`` (the rest,
    up to the run date), which only the few unmatched ids are joined with.
    """
    columns = [c for c in day_observations.columns if c not in ("decision_ts", "decision_date")]
    unmatched = day_observations.where(F.col("decision_ts").isNull()).select(*columns)
    older_times = older_decisions.select("decision_id", F.col("ts").alias("decision_ts")).join(
        unmatched.select("decision_id").distinct(), "decision_id"
    )
    linked = (
        day_observations.where(F.col("decision_ts").isNotNull())
        .select(*columns, "decision_ts")
        .unionByName(unmatched.join(older_times, "decision_id", "left").select(*columns, "decision_ts"))
    )
    longest = rules.groupBy("observation").agg(F.max("window_us").alias("window_us"))
    joined = linked.join(F.broadcast(longest), linked["name"] == longest["observation"], "left").withColumn(
        "delay_us", F.unix_micros("ts") - F.unix_micros("decision_ts")
    )
    outcome = (
        F.when(F.col("decision_ts").isNull(), "orphan")
        .when(F.col("window_us").isNull(), "unused")
        .when(F.col("delay_us") < 0, "early")
        .when(F.col("delay_us") > F.col("window_us"), "late")
        .otherwise("in_window")
    )
    return joined.select(*columns, "delay_us", outcome.alias("outcome"))
