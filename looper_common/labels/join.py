"""``join_feedback`` for one blueprint and run date: bronze events to silver examples.

Writes ``silver/examples`` (replacing the run date's partition), keeps the day's
orphan observations aside in ``quarantine/events`` and records join statistics in
``monitoring/join_stats``. Then it looks back over the blueprint's ``late_horizon`` for
feedback that reached bronze after an earlier day's examples were written
(:mod:`looper_common.labels.late`). Rerunning for the same date gives the same tables.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from looper_common.contracts.blueprint import Blueprint
from looper_common.labels.days import maturity_bounds
from looper_common.labels.windows import (
    build_examples,
    classify_observations,
    fold_labels,
    label_rules,
    label_values,
    link_decisions,
    mature_decisions,
)
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, JOIN_STATS, QUARANTINE, SILVER_EXAMPLES

log = logging.getLogger(__name__)

# Up to this many decisions with feedback in a run, their folded label values (an id and a
# small map each, ~100 bytes) are broadcast, so the wide decision rows are never shuffled
# (the faster plan, measured in docs/benchmarks.md's join section). Above it (hundreds of
# MiB to broadcast), both sides are shuffled on decision_id.
BROADCAST_MAX_DECISIONS = 5_000_000


def orphans(classified: DataFrame, day: Column) -> DataFrame:
    """Classified orphan observations as quarantine rows dated ``day``."""
    return classified.where(F.col("outcome") == "orphan").select(
        "event_id",
        "blueprint",
        F.lit("observation").alias("kind"),
        F.lit("orphan observation: no decision with this decision_id").alias("reason"),
        F.to_json(F.struct("event_id", "decision_id", "blueprint", "name", "value", "ts")).alias("payload"),
        F.lit("join_feedback").alias("source"),
        day.alias("date"),
    )


def _median_first_feedback(folded: DataFrame) -> float | None:
    """The median first-feedback delay of the examples: those with feedback are ``folded``'s entries.

    Exact, from one narrow column collected to the driver: Spark's exact percentile
    would keep a hash map of every distinct value (boxed) per task and merge them.
    """
    delays = (
        folded.select(F.explode(F.map_values("_labels")).alias("v"))
        .select(F.col("v.first_feedback_s").alias("s"))
        .where(F.col("s").isNotNull())
        .toArrow()
        .column("s")
        .to_numpy()
    )
    return float(np.median(delays)) if len(delays) else None


def join_feedback(lake: Lake, blueprint: Blueprint, run_date: date) -> dict[str, object]:
    """Build the run date's examples and statistics, then account for late feedback; returns the statistics."""
    from looper_common.labels.late import account_late_feedback  # late.py rebuilds days with build_day

    stats = build_day(lake, blueprint, run_date)
    account_late_feedback(lake, blueprint, run_date)
    return stats


def build_day(
    lake: Lake, blueprint: Blueprint, run_date: date, relabelled: dict[str, int] | None = None
) -> dict[str, object]:
    """The run date's examples and statistics on Spark, from bronze as it is now; returns the statistics.

    ``relabelled`` (label -> observations) is recorded when a relabel rebuilds the day.
    """
    decisions = lake.dataframe(BRONZE_DECISIONS).where(F.col("blueprint") == blueprint.name)
    observations = lake.dataframe(BRONZE_OBSERVATIONS).where(F.col("blueprint") == blueprint.name)
    rules = label_rules(lake.session(), blueprint)
    lo, _ = maturity_bounds(blueprint, run_date)
    # In-window observations of the matured decisions fall between the oldest one's time
    # and the end of the run date (a window may end exactly at midnight); an observation
    # of the run date is within a window only of a decision from ``lo`` on. So one join of
    # those observations with the decisions from ``lo.date()`` to the run date serves the
    # examples and the classification; older decisions are looked up by id only.
    recent = decisions.where(F.col("date").between(lo.date(), run_date))
    candidate_obs = observations.where(F.col("date").between(lo.date(), run_date + timedelta(days=1)))
    linked = link_decisions(candidate_obs, recent).persist()
    folded = fold_labels(label_values(linked, rules, blueprint, run_date)).persist()
    try:
        with_feedback = folded.count()
        broadcast = with_feedback <= BROADCAST_MAX_DECISIONS
        log.info("%d matured decisions have feedback: %s", with_feedback,
                 "broadcasting their label values" if broadcast else "shuffling both sides")
        written = Observation("examples")
        examples = build_examples(
            mature_decisions(decisions, blueprint, run_date), folded, rules, run_date, broadcast=broadcast
        ).observe(
            written,
            F.count(F.lit(1)).alias("examples"),
            F.coalesce(F.sum("n_observations"), F.lit(0)).alias("observations_in_window"),
        )
        lake.replace_partition(SILVER_EXAMPLES, examples, {"blueprint": blueprint.name, "date": run_date})
        # every matured decision gives exactly one example per label (the cross join above)
        matured_decisions = int(written.get["examples"]) // len(blueprint.labels)
        median_delay = _median_first_feedback(folded)
        classified = classify_observations(
            linked.where(F.col("date") == F.lit(run_date)),
            decisions.where(F.col("date") < F.lit(lo.date())),
            rules,
        ).cache()
        try:
            outcomes = {
                r["outcome"]: r["n"]
                for r in classified.groupBy("outcome").agg(F.count(F.lit(1)).alias("n")).collect()
            }
            if outcomes.get("orphan"):
                lake.insert_new(QUARANTINE, orphans(classified, F.lit(run_date)), {"date": [run_date]})
        finally:
            classified.unpersist()
    finally:
        folded.unpersist()
        linked.unpersist()

    stats = {
        "blueprint": blueprint.name,
        "blueprint_version": blueprint.version,
        "examples": int(written.get["examples"]),
        "matured_decisions": int(matured_decisions),
        "observations_in_window": int(written.get["observations_in_window"]),
        "late_observations": int(outcomes.get("late", 0)),
        "early_observations": int(outcomes.get("early", 0)),
        "orphan_observations": int(outcomes.get("orphan", 0)),
        "median_feedback_delay_s": median_delay,
        "date": run_date,
        # as an Arrow map reads back: (label, count) pairs; none is late when the day is built
        "late_after_join": [(label.name, 0) for label in blueprint.labels],
        "relabelled_after_join": [(label.name, (relabelled or {}).get(label.name, 0)) for label in blueprint.labels],
    }
    row = pa.Table.from_pylist([stats], schema=JOIN_STATS.schema)
    lake.replace_partition(JOIN_STATS, row, {"blueprint": blueprint.name, "date": run_date})
    return stats
