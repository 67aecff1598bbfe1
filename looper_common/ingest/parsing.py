"""Parse raw stream entries into bronze and quarantine rows, with a reason for every rejected one.

The rules, in Python terms (docs/events-and-keys.md, "What ingestion rejects"):

- The payload is UTF-8 JSON as msgspec reads it (RFC 8259: no ``NaN`` or
  ``Infinity`` literals, no trailing text, every number within a double's range)
  and its value is an object. Anything else is ``malformed JSON: ...``.
- ``kind`` is ``"decision"`` or ``"observation"``; a required field that is absent
  or null is missing.
- Each field has the JSON type of the event contract (``_Decision``,
  ``_Observation``): ids, names and ``action`` are strings; ``ts`` is a JSON integer
  (epoch milliseconds; ``1.0`` or ``1e3`` is not one); ``propensity``, ``value`` and
  the values of ``action_probs`` and ``scores`` are JSON numbers, integer or not;
  ``is_default`` is ``true`` or ``false``; ``features`` is an object of any JSON
  values. A field of another type is a reason naming the field and what it got
  (``json_values``); nothing is cast.
- Then the values: ``ts`` within what a microsecond timestamp holds, the blueprint
  known and the one of the stream, ``propensity`` in (0, 1], ``action`` one of the
  blueprint's, every declared feature present.

Every failure goes into the quarantine row's ``reason``, so one bad field never hides
the others. Valid events become bronze rows, one per ``event_id`` (the first in the
batch), their features as text (``json_values.feature_texts``). The common case is
decoded straight into the typed structs and checked for values only; an entry that
fails is decoded again as plain JSON to name every problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from looper_common.contracts import events
from looper_common.contracts.blueprint import Blueprint
from looper_common.ingest import json_values as jv
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE

Entry = tuple[str, str, "bytes | str | None"]  # stream, stream id, payload
SOURCE = "ingest_events"
_DAY_MS = 86_400_000
_MAX_MS = (2**63 - 1) // 1000  # beyond it a millisecond timestamp has no microsecond value


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
    features: dict[str, tuple[str, ...]]  # in the blueprint's order, for the reason
    feature_sets: dict[str, frozenset[str]]  # the same, for one subset test per event

    @classmethod
    def of(cls, blueprints: Mapping[str, Blueprint]) -> _Rules:
        features = {n: tuple(dict.fromkeys(f.name for f in bp.features)) for n, bp in blueprints.items()}
        return cls(
            {n: frozenset(bp.decision.actions) for n, bp in blueprints.items()},
            features,
            {n: frozenset(names) for n, names in features.items()},
        )


class _Decision(msgspec.Struct, tag_field="kind", tag=events.DECISION):
    """A decision event whose every field has its JSON type (the checks of ``_FIELD_CHECKS``)."""

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
    """An observation event whose every field has its JSON type."""

    event_id: str
    decision_id: str
    blueprint: str
    name: str
    value: float
    ts: int


_decode_typed = msgspec.json.Decoder(_Decision | _Observation).decode
_decode_json = msgspec.json.Decoder().decode

# Each field's type check, in the order the reason lists them; the same types as the structs.
_FIELD_CHECKS: dict[str, dict[str, jv.Check]] = {
    events.DECISION: {
        "event_id": jv.string, "decision_id": jv.string, "blueprint": jv.string,
        "blueprint_version": jv.string, "unit_id": jv.string, "ts": jv.epoch_ms,
        "features": jv.json_object, "action": jv.string, "propensity": jv.number,
        "action_probs": jv.number_map("probability"), "scores": jv.number_map("score"),
        "policy_version": jv.string, "is_default": jv.boolean,
    },
    events.OBSERVATION: {
        "event_id": jv.string, "decision_id": jv.string, "blueprint": jv.string,
        "name": jv.string, "value": jv.number, "ts": jv.epoch_ms,
    },
}
_REQUIRED = {events.DECISION: events.DECISION_REQUIRED, events.OBSERVATION: events.OBSERVATION_REQUIRED}
# Checked whatever the kind, so an event of an unknown kind is still placed and explained.
_COMMON_CHECKS = {name: _FIELD_CHECKS[events.DECISION][name] for name in ("event_id", "blueprint", "ts")}


def _value_reasons(
    blueprint: str | None, ts: int | None, stream_blueprint: str, rules: _Rules,
    action: str | None = None, propensity: float | None = None, features: dict | None = None,
) -> list[str]:
    """The value checks of an event; None is a value absent or of the wrong type (reported already).

    An observation has no ``action``, ``propensity`` or ``features``.
    """
    reasons = []
    if ts is not None and not -_MAX_MS <= ts <= _MAX_MS:
        reasons.append(f"ts: {ts} is out of range for epoch milliseconds")
    actions = rules.actions.get(blueprint)
    if blueprint is not None:
        if actions is None:
            reasons.append(f"unknown blueprint {blueprint}")
        if blueprint != stream_blueprint:
            reasons.append(f"blueprint {blueprint} sent on the stream of {stream_blueprint}")
    if propensity is not None and not 0.0 < propensity <= 1.0:
        reasons.append(f"propensity: {propensity!r} outside (0, 1]")
    if actions is not None:
        if action is not None and action not in actions:
            reasons.append(f"action: {action} is not an action of {blueprint}")
        if features is not None and not features.keys() >= rules.feature_sets[blueprint]:
            absent = [name for name in rules.features[blueprint] if name not in features]
            reasons.append("features: missing " + ", ".join(absent))
    return reasons


def _json_reasons(doc: dict[str, Any], stream_blueprint: str, rules: _Rules) -> list[str]:
    """Every failure of a decoded JSON object: kind, missing fields, wrong types, then values."""
    kind = doc.get("kind")
    checks = _FIELD_CHECKS.get(kind) if type(kind) is str else None
    reasons = []
    if checks is None:
        shown = kind if type(kind) is str else jv.json_kind(kind)
        reasons.append(f"kind: {shown} is not decision or observation")
        checks = _COMMON_CHECKS
    else:
        missing = [name for name in _REQUIRED[kind] if doc.get(name) is None]
        if missing:
            reasons.append("missing field(s): " + ", ".join(missing))
    valid = {}
    for name, check in checks.items():
        value = doc.get(name)
        if value is not None:
            problem = check(name, value)
            if problem is None:
                valid[name] = value
            else:
                reasons.append(problem)
    get = valid.get
    reasons += _value_reasons(
        get("blueprint"), get("ts"), stream_blueprint, rules, get("action"), get("propensity"), get("features")
    )
    return reasons


def _payload_reasons(payload: bytes | str | None, stream_blueprint: str, rules: _Rules) -> tuple[list[str], dict]:
    """The reasons a payload is rejected and the object it holds (empty unless it is one)."""
    if not payload:
        return ["malformed JSON: empty payload"], {}
    try:
        doc = _decode_json(payload)
    except UnicodeError as error:
        return [f"malformed JSON: not UTF-8 ({error.reason})"], {}
    except msgspec.DecodeError as error:
        message = str(error).removeprefix("JSON is malformed: ")
        return [f"malformed JSON: {message[:1].lower()}{message[1:]}"], {}
    if type(doc) is not dict:
        return [f"malformed JSON: payload is {jv.json_kind(doc)}, not an object"], {}
    return _json_reasons(doc, stream_blueprint, rules), doc


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
        error: Exception | None = None
        if payload:
            try:
                event = _decode_typed(payload)
            except (msgspec.DecodeError, UnicodeError) as exc:
                error = exc
            else:
                if type(event) is _Decision:
                    if not _value_reasons(
                        event.blueprint, event.ts, stream_blueprint, rules, event.action, event.propensity,
                        event.features,
                    ):
                        _add_decision(batch, event)
                        continue
                elif not _value_reasons(event.blueprint, event.ts, stream_blueprint, rules):
                    _add_observation(batch, event)
                    continue
        _add_rejected(batch, rules, stream, stream_id, payload, stream_blueprint, error)
    return batch


def _add_decision(batch: ParsedBatch, event: _Decision) -> None:
    ts = event.ts
    date = ts // _DAY_MS
    row = (
        event.event_id, event.decision_id, event.blueprint, event.blueprint_version, event.unit_id, ts,
        jv.feature_texts(event.features), event.action, event.propensity, event.action_probs, event.scores,
        event.policy_version, event.is_default, date,
    )
    batch.decisions.add(event.event_id, row, (event.blueprint, date))


def _add_observation(batch: ParsedBatch, event: _Observation) -> None:
    ts = event.ts
    date = ts // _DAY_MS
    row = (event.event_id, event.decision_id, event.blueprint, event.name, event.value, ts, date)
    batch.observations.add(event.event_id, row, (event.blueprint, date))


def _add_rejected(
    batch: ParsedBatch, rules: _Rules, stream: str, stream_id: str, payload: bytes | str | None,
    stream_blueprint: str, error: Exception | None,
) -> None:
    """Quarantine an entry the typed path did not take, with every reason it fails.

    A payload the typed decoder refused for nothing the checks name (a key given twice,
    once with the wrong type) keeps msgspec's message as its reason.
    """
    reasons, doc = _payload_reasons(payload, stream_blueprint, rules)
    if not reasons:
        reasons = [f"invalid event: {error}"]
    event_id, blueprint, kind = doc.get("event_id"), doc.get("blueprint"), doc.get("kind")
    if type(event_id) is not str:
        event_id = f"stream:{stream}:{stream_id}"
    arrival = int(stream_id.split("-", 1)[0]) // _DAY_MS
    row = (
        event_id,
        blueprint if type(blueprint) is str else stream_blueprint,
        kind if type(kind) is str else None,
        "; ".join(reasons),
        (payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload) or None,
        SOURCE,
        arrival,
    )
    batch.quarantine.add(event_id, row, (arrival,))
