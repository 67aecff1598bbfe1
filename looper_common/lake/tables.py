"""The lake's tables (DESIGN.md §4): names, Arrow schemas, partitioning, keys and properties.

The schemas are Arrow's (what delta-rs writes and Spark reads back): timestamps are
UTC-aware microseconds, dates ``date32``, maps of strings. Every table the contracts
list is created, empty, by :meth:`Lake.ensure_tables` when a job starts, so each one
exists from the first run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")
TEXT_MAP = pa.map_(pa.string(), pa.string())
NUMBER_MAP = pa.map_(pa.string(), pa.float64())
COUNT_MAP = pa.map_(pa.string(), pa.int64())


def _schema(*fields: tuple[str, pa.DataType, bool]) -> pa.Schema:
    return pa.schema([pa.field(name, kind, nullable) for name, kind, nullable in fields])


DECISIONS_SCHEMA = _schema(
    ("event_id", pa.string(), False), ("decision_id", pa.string(), False), ("blueprint", pa.string(), False),
    ("blueprint_version", pa.string(), False), ("unit_id", pa.string(), False), ("ts", TIMESTAMP, False),
    ("features", TEXT_MAP, False), ("action", pa.string(), False), ("propensity", pa.float64(), False),
    ("action_probs", NUMBER_MAP, False), ("scores", NUMBER_MAP, True), ("policy_version", pa.string(), True),
    ("is_default", pa.bool_(), False),
    ("default_reason", pa.string(), True),  # why the default was served (DESIGN.md §3); null otherwise
    # a challenger on live traffic (events.ROLLOUT_FIELDS); null otherwise
    ("variant", pa.string(), True), ("shadow_version", pa.string(), True), ("shadow_action", pa.string(), True),
    ("shadow_scores", NUMBER_MAP, True),
    ("date", pa.date32(), False),
)
OBSERVATIONS_SCHEMA = _schema(
    ("event_id", pa.string(), False), ("decision_id", pa.string(), False), ("blueprint", pa.string(), False),
    ("name", pa.string(), False), ("value", pa.float64(), False), ("ts", TIMESTAMP, False),
    ("date", pa.date32(), False),
)
QUARANTINE_SCHEMA = _schema(
    ("event_id", pa.string(), False), ("blueprint", pa.string(), True), ("kind", pa.string(), True),
    ("reason", pa.string(), False), ("payload", pa.string(), True), ("source", pa.string(), False),
    ("date", pa.date32(), False),
)
EXAMPLES_SCHEMA = _schema(
    ("decision_id", pa.string(), False), ("label", pa.string(), False), ("value", pa.float64(), False),
    ("n_observations", pa.int64(), False), ("first_feedback_s", pa.float64(), True),
    ("blueprint", pa.string(), False), ("blueprint_version", pa.string(), False), ("unit_id", pa.string(), False),
    ("ts", TIMESTAMP, False), ("features", TEXT_MAP, False), ("action", pa.string(), False),
    ("propensity", pa.float64(), False), ("action_probs", NUMBER_MAP, False), ("scores", NUMBER_MAP, True),
    ("policy_version", pa.string(), True), ("is_default", pa.bool_(), False),
    ("date", pa.date32(), False),  # the run date in which the example matured
)
JOIN_STATS_SCHEMA = _schema(
    ("blueprint", pa.string(), False), ("blueprint_version", pa.string(), False), ("examples", pa.int64(), False),
    ("matured_decisions", pa.int64(), False), ("observations_in_window", pa.int64(), False),
    ("late_observations", pa.int64(), False), ("early_observations", pa.int64(), False),
    ("orphan_observations", pa.int64(), False), ("median_feedback_delay_s", pa.float64(), True),
    ("date", pa.date32(), False),
    # feedback that reached bronze after this date's examples were written (labels/late.py):
    # per label, in-window observations missing from the examples (count), and those a
    # relabel run has since written into them (relabel)
    ("late_after_join", COUNT_MAP, True), ("relabelled_after_join", COUNT_MAP, True),
)
INGEST_WATERMARK_SCHEMA = _schema(
    ("blueprint", pa.string(), False), ("watermark", TIMESTAMP, False), ("updated_at", TIMESTAMP, False),
)
ALIAS_HISTORY_SCHEMA = _schema(
    ("model", pa.string(), False), ("version", pa.string(), True),  # null: the alias was removed
    ("alias", pa.string(), False), ("ts", TIMESTAMP, False), ("previous_version", pa.string(), True),
    ("actor", pa.string(), False), ("reason", pa.string(), False), ("metrics", NUMBER_MAP, True),
    ("blueprint", pa.string(), False), ("blueprint_version", pa.string(), True), ("run_date", pa.date32(), True),
)

# monitoring/drift, serving and freshness: one row per measured quantity (check, subject)
MONITOR_METRICS_SCHEMA = _schema(
    ("blueprint", pa.string(), False), ("name", pa.string(), False), ("check", pa.string(), False),
    ("subject", pa.string(), True), ("value", pa.float64(), True), ("detail", pa.string(), True),
    ("blueprint_version", pa.string(), False), ("date", pa.date32(), False),
)
ONLINE_VALUE_SCHEMA = _schema(
    ("blueprint", pa.string(), False), ("name", pa.string(), False),  # policy version, default, holdback, lift
    ("label", pa.string(), False), ("decisions", pa.int64(), False), ("mean", pa.float64(), True),
    ("lower", pa.float64(), True), ("upper", pa.float64(), True),
    ("ope_estimate", pa.float64(), True), ("ope_lower", pa.float64(), True), ("ope_upper", pa.float64(), True),
    ("blueprint_version", pa.string(), False), ("date", pa.date32(), False),
)
ALERTS_SCHEMA = _schema(
    ("blueprint", pa.string(), False), ("check", pa.string(), False), ("subject", pa.string(), True),
    ("value", pa.float64(), False), ("threshold", pa.float64(), False), ("severity", pa.string(), False),
    ("message", pa.string(), False), ("date", pa.date32(), False),
)


@dataclass(frozen=True)
class TableSpec:
    """One table: its path under the lake root, schema, partition columns, key and Delta properties."""

    name: str
    schema: pa.Schema
    partition_by: tuple[str, ...]
    key: tuple[str, ...]
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def columns(self) -> list[str]:
        return self.schema.names


BRONZE_DECISIONS = TableSpec("bronze/decisions", DECISIONS_SCHEMA, ("blueprint", "date"), ("event_id",))
BRONZE_OBSERVATIONS = TableSpec("bronze/observations", OBSERVATIONS_SCHEMA, ("blueprint", "date"), ("event_id",))
QUARANTINE = TableSpec("quarantine/events", QUARANTINE_SCHEMA, ("date",), ("event_id",))
SILVER_EXAMPLES = TableSpec(
    "silver/examples", EXAMPLES_SCHEMA, ("blueprint", "date"), ("decision_id", "label"),
    # Readers filter on the partition columns; min/max of random ids and long strings skip
    # nothing and cost the writer time on every column, so statistics cover these three.
    properties=(("delta.dataSkippingStatsColumns", "ts,value,n_observations"),),
)
JOIN_STATS = TableSpec("monitoring/join_stats", JOIN_STATS_SCHEMA, ("blueprint", "date"), ("blueprint", "date"))
ALIAS_HISTORY = TableSpec("gold/alias_history", ALIAS_HISTORY_SCHEMA, (), ("model", "version", "alias", "ts"))
_MONITOR_KEY = ("blueprint", "date", "name")
MONITOR_DRIFT = TableSpec("monitoring/drift", MONITOR_METRICS_SCHEMA, ("blueprint", "date"), _MONITOR_KEY)
MONITOR_SERVING = TableSpec("monitoring/serving", MONITOR_METRICS_SCHEMA, ("blueprint", "date"), _MONITOR_KEY)
MONITOR_FRESHNESS = TableSpec("monitoring/freshness", MONITOR_METRICS_SCHEMA, ("blueprint", "date"), _MONITOR_KEY)
MONITOR_ONLINE_VALUE = TableSpec("monitoring/online_value", ONLINE_VALUE_SCHEMA, ("blueprint", "date"), _MONITOR_KEY)
MONITOR_ALERTS = TableSpec("monitoring/alerts", ALERTS_SCHEMA, ("date",), ("blueprint", "date", "check", "subject"))

# per blueprint, the arrival time through which its stream is committed (ingest/watermark.py)
INGEST_WATERMARK = TableSpec("monitoring/ingest_watermark", INGEST_WATERMARK_SCHEMA, ("blueprint",), ("blueprint",))

ALL_TABLES = (BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE, SILVER_EXAMPLES, JOIN_STATS, ALIAS_HISTORY,
              INGEST_WATERMARK, MONITOR_DRIFT, MONITOR_SERVING, MONITOR_FRESHNESS, MONITOR_ONLINE_VALUE,
              MONITOR_ALERTS)
