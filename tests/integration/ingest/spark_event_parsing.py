"""The Spark parser ingestion used before ``looper_common.ingest.parsing``: the reference its tests compare with.

Kept as it ran (Spark's rules are the contract the Python parser keeps). Pure
``DataFrame -> DataFrame`` functions: ``parse_events`` reads the JSON payloads
leniently (every scalar as text, so one bad field never hides the others), then
checks each field and collects every failure into ``reason``. Valid rows become
bronze decisions and observations; the rest go to quarantine with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from looper_common.contracts import events
from looper_common.contracts.blueprint import Blueprint
from looper_common.lake.tables import DECISIONS_SCHEMA, OBSERVATIONS_SCHEMA, QUARANTINE_SCHEMA

RAW_SCHEMA = T.StructType([
    T.StructField("stream", T.StringType(), False),
    T.StructField("stream_id", T.StringType(), False),
    T.StructField("payload", T.StringType(), True),
])

_TEXT_FIELDS = (
    "kind", "event_id", "decision_id", "blueprint", "blueprint_version", "unit_id", "ts",
    "action", "propensity", "policy_version", "is_default", "name", "value",
)
_TEXT_MAP = T.MapType(T.StringType(), T.StringType())
_LENIENT_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType()) for name in _TEXT_FIELDS]
    + [T.StructField(name, _TEXT_MAP) for name in ("features", "action_probs", "scores")]
)


def _map_literal(values: Mapping[str, list[str]]) -> Column:
    """A literal ``map<string, array<string>>`` (empty-safe)."""
    if not values:
        return F.create_map().cast(T.MapType(T.StringType(), T.ArrayType(T.StringType())))
    pairs = []
    for key, items in sorted(values.items()):
        pairs += [F.lit(key), F.array(*[F.lit(i) for i in items]).cast("array<string>")]
    return F.create_map(*pairs)


def _check(condition: Column, message: Column | str) -> Column:
    """``message`` when ``condition`` holds, else null (null-safe: null means fine)."""
    msg = F.lit(message) if isinstance(message, str) else message
    return F.when(F.coalesce(condition, F.lit(False)), msg)


def _missing(fields: tuple[str, ...], kind: str) -> Column:
    return F.when(
        F.col("kind") == kind,
        F.concat_ws(", ", *[F.when(F.col(f).isNull(), F.lit(f)) for f in fields]),
    )


def parse_events(raw: DataFrame, blueprints: Mapping[str, Blueprint]) -> DataFrame:
    """Raw entries ``(stream, stream_id, payload)`` to typed events plus ``reason`` (null if valid)."""
    actions = _map_literal({n: bp.decision.actions for n, bp in blueprints.items()})
    features = _map_literal({n: [f.name for f in bp.features] for n, bp in blueprints.items()})
    known = F.array(*[F.lit(n) for n in sorted(blueprints)]).cast("array<string>")
    stream_blueprint = F.regexp_replace("stream", f"^{events.STREAM_PREFIX}", "")
    arrived_ms = F.split("stream_id", "-").getItem(0).cast("long")

    parsed = raw.select(
        "stream",
        "stream_id",
        "payload",
        F.json_object_keys("payload").isNotNull().alias("_is_object"),
        F.from_json("payload", _LENIENT_SCHEMA).alias("j"),
        F.to_date(F.timestamp_millis(arrived_ms)).alias("_arrival_date"),
        stream_blueprint.alias("_stream_blueprint"),
    ).select("*", "j.*").drop("j")

    ts_ms = F.expr("try_cast(ts as bigint)")
    propensity = F.expr("try_cast(propensity as double)")
    value = F.expr("try_cast(value as double)")
    is_default = F.expr("try_cast(is_default as boolean)")
    probs = F.transform_values("action_probs", lambda _, v: v.try_cast("double"))
    scores = F.transform_values("scores", lambda _, v: v.try_cast("double"))
    bad_map_value = lambda m: F.exists(F.map_values(m), lambda v: v.isNull())  # noqa: E731
    missing_features = F.array_except(features[F.col("blueprint")], F.map_keys("features"))
    is_decision = F.col("kind") == events.DECISION
    is_observation = F.col("kind") == events.OBSERVATION

    reasons = F.concat_ws(
        "; ",
        _check(~F.col("_is_object"), "malformed JSON: payload is not a JSON object"),
        _check(
            F.col("_is_object") & ~F.col("kind").isin(events.DECISION, events.OBSERVATION),
            F.format_string("kind: %s is not decision or observation", F.coalesce("kind", F.lit("null"))),
        ),
        _check(
            F.length(_missing(events.DECISION_REQUIRED, events.DECISION)) > 0,
            F.concat(F.lit("missing field(s): "), _missing(events.DECISION_REQUIRED, events.DECISION)),
        ),
        _check(
            F.length(_missing(events.OBSERVATION_REQUIRED, events.OBSERVATION)) > 0,
            F.concat(F.lit("missing field(s): "), _missing(events.OBSERVATION_REQUIRED, events.OBSERVATION)),
        ),
        _check(F.col("ts").isNotNull() & ts_ms.isNull(), "ts: not integer epoch milliseconds"),
        _check(
            F.col("blueprint").isNotNull() & ~F.array_contains(known, F.col("blueprint")),
            F.format_string("unknown blueprint %s", F.col("blueprint")),
        ),
        _check(
            F.col("blueprint").isNotNull() & (F.col("blueprint") != F.col("_stream_blueprint")),
            F.format_string("blueprint %s sent on the stream of %s", "blueprint", "_stream_blueprint"),
        ),
        _check(
            is_decision & F.col("propensity").isNotNull()
            & (propensity.isNull() | (propensity <= 0) | (propensity > 1)),
            F.format_string("propensity: %s outside (0, 1]", "propensity"),
        ),
        _check(
            is_decision & F.col("is_default").isNotNull() & is_default.isNull(),
            "is_default: not a boolean",
        ),
        _check(
            is_decision & F.col("action").isNotNull() & F.col("blueprint").isin(*blueprints)
            & ~F.array_contains(actions[F.col("blueprint")], F.col("action")),
            F.format_string("action: %s is not an action of the blueprint", "action"),
        ),
        _check(is_decision & bad_map_value(probs), "action_probs: non-numeric probability"),
        _check(is_decision & bad_map_value(scores), "scores: non-numeric score"),
        _check(
            is_decision & F.col("features").isNotNull() & (F.size(missing_features) > 0),
            F.concat(F.lit("features: missing "), F.array_join(missing_features, ", ")),
        ),
        _check(is_observation & F.col("value").isNotNull() & value.isNull(), "value: not a number"),
    )
    return parsed.select(
        "stream", "stream_id", "payload", "kind", "event_id", "decision_id", "blueprint",
        "blueprint_version", "unit_id", F.timestamp_millis(ts_ms).alias("ts"), "features",
        "action", propensity.alias("propensity"), probs.alias("action_probs"),
        scores.alias("scores"), "policy_version", is_default.alias("is_default"), "name",
        value.alias("value"), F.to_date(F.timestamp_millis(ts_ms)).alias("date"),
        "_arrival_date", "_stream_blueprint",
        F.when(F.length(reasons) > 0, reasons).alias("reason"),
    )


def valid_decisions(parsed: DataFrame) -> DataFrame:
    """Valid decision events in the bronze schema, one row per event_id."""
    rows = parsed.where(F.col("reason").isNull() & (F.col("kind") == events.DECISION))
    return rows.select(*DECISIONS_SCHEMA.fieldNames()).dropDuplicates(["event_id"])


def valid_observations(parsed: DataFrame) -> DataFrame:
    """Valid observation events in the bronze schema, one row per event_id."""
    rows = parsed.where(F.col("reason").isNull() & (F.col("kind") == events.OBSERVATION))
    return rows.select(*OBSERVATIONS_SCHEMA.fieldNames()).dropDuplicates(["event_id"])


def rejected_events(parsed: DataFrame, source: str = "ingest_events") -> DataFrame:
    """Invalid events in the quarantine schema, keyed by their event_id or stream position."""
    rows = parsed.where(F.col("reason").isNotNull())
    return rows.select(
        F.coalesce("event_id", F.concat(F.lit("stream:"), "stream", F.lit(":"), "stream_id")).alias("event_id"),
        F.coalesce("blueprint", "_stream_blueprint").alias("blueprint"),
        "kind",
        "reason",
        "payload",
        F.lit(source).alias("source"),
        F.col("_arrival_date").alias("date"),
    ).select(*QUARANTINE_SCHEMA.fieldNames()).dropDuplicates(["event_id"])
