"""Feedback that reaches the lake after its day's examples were written: counted, or relabelled.

Labels are built by event time, but an observation can arrive (be ingested) after the
join of the day its decision matured in: SDK buffering during an outage, ingestion lag,
a client that batches. Each run of ``join_feedback`` for day D looks back over the
blueprint's ``late_horizon`` (the run dates D - h .. D - 1 whose join ran) and
recomputes, from bronze as it is now, two things per earlier day P:

* per label, the in-window observations of P's examples that are in bronze but not in
  the examples (``late_after_join``: the examples' ``n_observations`` against a recount);
* the outcomes of the observations dated P (after the window, before the decision,
  orphan), so one that arrived after P's join is counted like the others; late orphans
  go to ``quarantine/events`` like any orphan.

Both are state, not increments: a rerun finds the same numbers and writes nothing new,
and an observation is never counted twice. With ``late_feedback: relabel`` a day with
late feedback is rebuilt (its examples partition replaced, as its own join would), the
observations it gained are added to ``relabelled_after_join`` and its
``late_after_join`` drops to zero; rerunning then changes nothing more.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, timedelta

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from looper_common.contracts.blueprint import Blueprint
from looper_common.labels.days import maturity_bounds
from looper_common.labels.join import build_day, orphans
from looper_common.labels.windows import classify_observations, label_rules, link_decisions
from looper_common.lake.engine import Lake, blueprint_dates
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, JOIN_STATS, QUARANTINE, SILVER_EXAMPLES

log = logging.getLogger(__name__)
_OUTCOME_COLUMNS = {"late": "late_observations", "early": "early_observations", "orphan": "orphan_observations"}


def horizon(blueprint: Blueprint, run_date: date) -> tuple[date, date]:
    """The earlier run dates ``run_date``'s join checks for late feedback (first, last)."""
    return run_date - timedelta(days=blueprint.late_horizon_days), run_date - timedelta(days=1)


def _missing_feedback(linked: DataFrame, examples: DataFrame, rules: DataFrame) -> DataFrame:
    """Per (example date, label): in-window observations in bronze now minus those in the examples."""
    in_window = (
        linked.where(F.col("decision_ts").isNotNull())
        .join(F.broadcast(rules), linked["name"] == rules["observation"])
        .withColumn("delay_us", F.unix_micros("ts") - F.unix_micros("decision_ts"))
        .where((F.col("delay_us") >= 0) & (F.col("delay_us") <= F.col("window_us")))
        .groupBy("decision_id", "label")
        .agg(F.count(F.lit(1)).alias("n_now"))
    )
    return (
        examples.join(in_window, ["decision_id", "label"], "left")
        .groupBy("date", "label")
        .agg(F.sum(F.coalesce(F.col("n_now"), F.lit(0)) - F.col("n_observations")).alias("missing"))
    )


def _outcomes_by_date(linked: DataFrame, older_decisions: DataFrame, rules: DataFrame,
                      first: date, last: date) -> DataFrame:
    """The observations dated ``first`` .. ``last`` classified as their own day's join does.

    That join saw the decisions up to the observation's date only, so a match with a later
    decision is dropped here too (the observation is then looked up among the older ones).
    """
    dated = linked.where(F.col("date").between(first, last))
    same_or_earlier = F.col("decision_date") <= F.col("date")
    dated = dated.withColumn("decision_ts", F.when(same_or_earlier, F.col("decision_ts"))).withColumn(
        "decision_date", F.when(same_or_earlier, F.col("decision_date"))
    )
    return classify_observations(dated, older_decisions, rules)


def _pairs(counts: dict[str, int], blueprint: Blueprint) -> list[tuple[str, int]]:
    return [(label.name, int(counts.get(label.name, 0))) for label in blueprint.labels]


def account_late_feedback(lake: Lake, blueprint: Blueprint, run_date: date) -> dict[date, dict[str, int]]:
    """Update the earlier days' join statistics (and, with relabel, their examples); returns late counts per day.

    Only days whose join ran (a ``monitoring/join_stats`` row) are checked: a day not
    joined yet has nothing late, its join will see every observation.
    """
    first, last = horizon(blueprint, run_date)
    rows = {r["date"]: r for r in lake.read(JOIN_STATS, filters=blueprint_dates(blueprint.name, first, last)).table
            .to_pylist()}
    if not rows:
        return {}
    rules = label_rules(lake.session(), blueprint)
    lo, _ = maturity_bounds(blueprint, first)
    decisions = lake.dataframe(BRONZE_DECISIONS).where(F.col("blueprint") == blueprint.name)
    observations = lake.dataframe(BRONZE_OBSERVATIONS).where(F.col("blueprint") == blueprint.name)
    # every window of P's examples ends by P's end: their observations are dated up to run_date
    linked = link_decisions(
        observations.where(F.col("date").between(lo.date(), run_date)),
        decisions.where(F.col("date").between(lo.date(), last)),
    ).persist()
    try:
        examples = (
            lake.dataframe(SILVER_EXAMPLES)
            .where((F.col("blueprint") == blueprint.name) & F.col("date").between(first, last))
            .select("decision_id", "label", "n_observations", "date")
        )
        missing: dict[date, dict[str, int]] = defaultdict(dict)
        for r in _missing_feedback(linked, examples, rules).collect():
            missing[r["date"]][r["label"]] = int(r["missing"])
        classified = _outcomes_by_date(linked, decisions.where(F.col("date") < F.lit(lo.date())), rules, first, last)
        classified = classified.cache()
        try:
            outcomes: dict[date, dict[str, int]] = defaultdict(dict)
            for r in classified.groupBy("date", "outcome").agg(F.count(F.lit(1)).alias("n")).collect():
                outcomes[r["date"]][r["outcome"]] = int(r["n"])
            if any(counts.get("orphan") for counts in outcomes.values()):
                days = sorted(d for d, counts in outcomes.items() if counts.get("orphan"))
                lake.insert_new(QUARANTINE, orphans(classified.where(F.col("date").isin(days)), F.col("date")),
                                {"date": days})
        finally:
            classified.unpersist()
    finally:
        linked.unpersist()

    late = {day: {k: v for k, v in missing.get(day, {}).items() if v} for day in rows}
    for day, row in sorted(rows.items()):
        if late[day] and blueprint.late_feedback == "relabel":
            gained = dict(row["relabelled_after_join"] or [])
            for label, n in late[day].items():
                gained[label] = gained.get(label, 0) + n
            log.info("%s %s: %s late observation(s) per label, relabelling the day", blueprint.name, day, late[day])
            build_day(lake, blueprint, day, relabelled=gained)
            continue
        updated = {
            **row,
            **{column: outcomes.get(day, {}).get(outcome, 0) for outcome, column in _OUTCOME_COLUMNS.items()},
            "late_after_join": _pairs(late[day], blueprint),
        }
        if updated != row:
            log.info("%s %s: late feedback after the join %s, outcomes %s", blueprint.name, day,
                     late[day], dict(outcomes.get(day, {})))
            lake.replace_partition(JOIN_STATS, pa.Table.from_pylist([updated], schema=JOIN_STATS.schema),
                                   {"blueprint": blueprint.name, "date": day})
    return {day: counts for day, counts in late.items() if counts}
