"""Parse raw stream entries into bronze and quarantine rows, with a reason for every rejected one.

``parse_entries`` reads each JSON payload leniently (every field as its text, as
Spark's ``from_json`` did, so one bad field never hides the others), checks each
field and collects every failure into ``reason``. Valid events become bronze
decisions and observations, one row per ``event_id``; the rest become quarantine
rows with that reason. It runs in Python while the batch is read, so the partition
values each MERGE may touch are known without a Spark job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from looper_common.contracts import events
from looper_common.contracts.blueprint import Blueprint
from looper_common.ingest.json_values import (
    decode_object,
    double_map,
    feature_texts,
    json_text,
    text_map,
    to_boolean,
    to_double,
    to_long,
)
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE

Entry = tuple[str, str, "bytes | str | None"]  # stream, stream id, payload
SOURCE = "ingest_events"
_DAY_MS = 86_400_000
_MAX_MS = (2**63 - 1) // 1000  # beyond it a millisecond timestamp has no microsecond value
_TEXT_FIELDS = (
    "event_id", "decision_id", "blueprint", "blueprint_version", "unit_id", "ts",
    "action", "propensity", "policy_version", "is_default", "name", "value",
)
_MAP_FIELDS = ("features", "action_probs", "scores")


@dataclass
class TableRows:
    """Rows for one table, in its schema's column order, unique by event_id."""

    partition_by: tuple[str, ...]
    rows: list[tuple] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    keys: set[tuple] = field(default_factory=set)  # partition values present, in partition_by order

    def add(self, event_id: str, row: tuple, key: tuple) -> None:
        if event_id in self.seen:
            return
        self.seen.add(event_id)
        self.rows.append(row)
        self.keys.add(key)

    @property
    def partitions(self) -> dict[str, set]:
        """Partition column -> the values present (what a MERGE needs to read of the target)."""
        return {column: {key[i] for key in self.keys} for i, column in enumerate(self.partition_by)}


@dataclass
class ParsedBatch:
    """One batch parsed: decisions ``(event_id, ..., ts_ms, ..., date_days)``, observations, quarantine."""

    decisions: TableRows = field(default_factory=lambda: TableRows(BRONZE_DECISIONS.partition_by))
    observations: TableRows = field(default_factory=lambda: TableRows(BRONZE_OBSERVATIONS.partition_by))
    quarantine: TableRows = field(default_factory=lambda: TableRows(QUARANTINE.partition_by))
    entries: int = 0


@dataclass(frozen=True)
class _Rules:
    actions: dict[str, frozenset[str]]
    features: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, blueprints: Mapping[str, Blueprint]) -> _Rules:
        return cls(
            {n: frozenset(bp.decision.actions) for n, bp in blueprints.items()},
            {n: tuple(dict.fromkeys(f.name for f in bp.features)) for n, bp in blueprints.items()},
        )


def _reasons(
    kind: str | None, is_object: bool, t: dict[str, str | None], maps: dict, stream_blueprint: str, rules: _Rules
) -> list[str]:
    """Every check's failure, in the order the reason lists them (the rules of DESIGN.md §3)."""
    reasons = []
    is_decision, is_observation = kind == events.DECISION, kind == events.OBSERVATION
    if not is_object:
        reasons.append("malformed JSON: payload is not a JSON object")
    elif not (is_decision or is_observation):
        reasons.append(f"kind: {'null' if kind is None else kind} is not decision or observation")
    if is_decision or is_observation:
        required = events.DECISION_REQUIRED if is_decision else events.OBSERVATION_REQUIRED
        missing = [f for f in required if (maps[f] if f in maps else t[f]) is None]
        if missing:
            reasons.append("missing field(s): " + ", ".join(missing))
    ts, blueprint = t["ts"], t["blueprint"]
    if ts is not None and to_long(ts) is None:
        reasons.append("ts: not integer epoch milliseconds")
    if blueprint is not None and blueprint not in rules.actions:
        reasons.append(f"unknown blueprint {blueprint}")
    if blueprint is not None and blueprint != stream_blueprint:
        reasons.append(f"blueprint {blueprint} sent on the stream of {stream_blueprint}")
    if is_decision:
        propensity = t["propensity"]
        if propensity is not None:
            p = to_double(propensity)
            if p is None or not 0.0 < p <= 1.0:  # NaN is outside too
                reasons.append(f"propensity: {propensity} outside (0, 1]")
        if t["is_default"] is not None and to_boolean(t["is_default"]) is None:
            reasons.append("is_default: not a boolean")
        action = t["action"]
        if action is not None and blueprint in rules.actions and action not in rules.actions[blueprint]:
            reasons.append(f"action: {action} is not an action of the blueprint")
        if any(v is None for v in (maps["action_probs"] or {}).values()):
            reasons.append("action_probs: non-numeric probability")
        if any(v is None for v in (maps["scores"] or {}).values()):
            reasons.append("scores: non-numeric score")
        features = maps["features"]
        if features is not None and blueprint in rules.features:
            absent = [f for f in rules.features[blueprint] if f not in features]
            if absent:
                reasons.append("features: missing " + ", ".join(absent))
    if is_observation and t["value"] is not None and to_double(t["value"]) is None:
        reasons.append("value: not a number")
    return reasons


class _Decision(msgspec.Struct, tag_field="kind", tag=events.DECISION):
    """A decision event whose every field has its usual JSON type (the common case)."""

    event_id: str
    decision_id: str
    blueprint: str
    blueprint_version: str
    unit_id: str
    ts: int
    features: dict[str, Any]
    action: str
    propensity: float
    action_probs: dict[str, float]
    is_default: bool
    scores: dict[str, float] | None = None
    policy_version: str | None = None


class _Observation(msgspec.Struct, tag_field="kind", tag=events.OBSERVATION):
    """An observation event whose every field has its usual JSON type."""

    event_id: str
    decision_id: str
    blueprint: str
    name: str
    value: float
    ts: int


# Strict JSON of the usual types reads the same here as in Spark's reader (an integer
# where a double is expected included); anything else raises and goes to _parse_entry.
_decode_typed = msgspec.json.Decoder(_Decision | _Observation).decode


def parse_entries(entries: Iterable[Entry], blueprints: Mapping[str, Blueprint]) -> ParsedBatch:
    """Entries ``(stream, stream_id, payload)`` to bronze rows and quarantine rows with reasons."""
    rules = _Rules.of(blueprints)
    batch = ParsedBatch()
    stream_blueprints: dict[str, str] = {}
    for stream, stream_id, payload in entries:
        batch.entries += 1
        stream_blueprint = stream_blueprints.get(stream)
        if stream_blueprint is None:
            stream_blueprint = stream_blueprints[stream] = events.blueprint_of_stream(stream)
        if payload:
            try:
                event = _decode_typed(payload)
            except (msgspec.DecodeError, UnicodeDecodeError):
                pass
            else:
                if type(event) is _Decision:
                    if _valid_decision(batch, rules, event, stream_blueprint):
                        continue
                elif _valid_observation(batch, rules, event, stream_blueprint):
                    continue
        _parse_entry(batch, rules, stream, stream_id, payload or None)
    return batch


def _valid_decision(batch: ParsedBatch, rules: _Rules, event: _Decision, stream_blueprint: str) -> bool:
    """Add a typed decision that passes every check; False sends it through ``_parse_entry``.

    Decided without the texts Spark would have made; ``_parse_entry`` gives the same
    row for it (tests/integration/test_event_parsing.py compares both with Spark).
    """
    blueprint, ts, propensity = event.blueprint, event.ts, event.propensity
    actions = rules.actions.get(blueprint)
    if (
        blueprint != stream_blueprint or actions is None or event.action not in actions
        or not -_MAX_MS <= ts <= _MAX_MS or not 0.0 < propensity <= 1.0
    ):
        return False
    features = event.features
    for name in rules.features[blueprint]:
        if name not in features:
            return False
    date = ts // _DAY_MS
    row = (
        event.event_id, event.decision_id, blueprint, event.blueprint_version, event.unit_id, ts,
        feature_texts(features), event.action, propensity, event.action_probs, event.scores,
        event.policy_version, event.is_default, date,
    )
    batch.decisions.add(event.event_id, row, (blueprint, date))
    return True


def _valid_observation(batch: ParsedBatch, rules: _Rules, event: _Observation, stream_blueprint: str) -> bool:
    """Add a typed observation that passes every check; False sends it through ``_parse_entry``."""
    blueprint, ts = event.blueprint, event.ts
    if blueprint != stream_blueprint or blueprint not in rules.actions or not -_MAX_MS <= ts <= _MAX_MS:
        return False
    date = ts // _DAY_MS
    row = (event.event_id, event.decision_id, blueprint, event.name, event.value, ts, date)
    batch.observations.add(event.event_id, row, (blueprint, date))
    return True


def _parse_entry(batch: ParsedBatch, rules: _Rules, stream: str, stream_id: str, payload) -> None:
    fields, is_object = decode_object(payload)
    get = fields.get if fields is not None else {}.get
    t = {name: json_text(get(name)) for name in _TEXT_FIELDS}
    kind = json_text(get("kind"))
    maps = {
        "features": text_map(get("features")),
        "action_probs": double_map(text_map(get("action_probs"))),
        "scores": double_map(text_map(get("scores"))),
    }
    stream_blueprint = events.blueprint_of_stream(stream)
    reasons = _reasons(kind, is_object, t, maps, stream_blueprint, rules)
    ts_ms = to_long(t["ts"])
    if not reasons and (ts_ms is None or abs(ts_ms) > _MAX_MS):
        reasons = ["ts: not integer epoch milliseconds"]
    if reasons:
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8", "replace")
        event_id = t["event_id"] if t["event_id"] is not None else f"stream:{stream}:{stream_id}"
        arrival = int(stream_id.split("-", 1)[0]) // _DAY_MS
        blueprint = t["blueprint"] if t["blueprint"] is not None else stream_blueprint
        row = (event_id, blueprint, kind, "; ".join(reasons), payload, SOURCE, arrival)
        batch.quarantine.add(event_id, row, (arrival,))
        return
    date = ts_ms // _DAY_MS
    partition = (t["blueprint"], date)
    if kind == events.DECISION:
        row = (
            t["event_id"], t["decision_id"], t["blueprint"], t["blueprint_version"], t["unit_id"], ts_ms,
            maps["features"], t["action"], to_double(t["propensity"]), maps["action_probs"], maps["scores"],
            t["policy_version"], to_boolean(t["is_default"]), date,
        )
        batch.decisions.add(t["event_id"], row, partition)
    else:
        row = (t["event_id"], t["decision_id"], t["blueprint"], t["name"], to_double(t["value"]), ts_ms, date)
        batch.observations.add(t["event_id"], row, partition)
