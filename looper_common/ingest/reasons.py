"""Why an entry is rejected: every failure of its payload, each naming the field (``contracts.event_rules``).

The rules, in Python terms (docs/events-and-keys.md, "What ingestion rejects"):

- The payload is at most ``max_event_bytes`` of UTF-8 JSON as msgspec reads it
  (RFC 8259: no trailing text, every number within a double's range) and its value is
  an object. A payload nested deeper than the decoder's recursion limit is ``payload:
  nested too deeply``; one with ``NaN`` or ``Infinity`` literals (what Python's ``json``
  writes for them) names the field holding them; anything else is ``malformed JSON: ...``.
- ``kind`` is ``"decision"`` or ``"observation"``; a required field that is absent
  or null is missing.
- Each field has the JSON type of the event contract: ids, names and ``action`` are
  strings with no lone surrogate; ``ts`` is a JSON integer (epoch milliseconds);
  ``propensity``, ``value`` and the values of ``action_probs`` and ``scores`` are finite
  JSON numbers; ``is_default`` is ``true`` or ``false``; ``features`` is an object of
  JSON values, its names and strings valid Unicode; ``default_reason`` a string.
- Then the values: ``ts`` within the window around the entry's arrival, the blueprint
  known and the one of the stream, ``propensity`` in (0, 1], ``action`` one of the
  blueprint's, every declared feature present.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from looper_common.contracts import event_rules, events
from looper_common.contracts.blueprint import Blueprint
from looper_common.ingest import json_values as jv


@dataclass(frozen=True)
class Rules:
    """What the value checks need of the blueprints and the limits."""

    actions: dict[str, frozenset[str]]
    features: dict[str, tuple[str, ...]]  # in the blueprint's order, for the reason
    feature_sets: dict[str, frozenset[str]]  # the same, for one subset test per event
    limits: event_rules.EventLimits

    @classmethod
    def of(cls, blueprints: Mapping[str, Blueprint], limits: event_rules.EventLimits) -> Rules:
        features = {n: tuple(dict.fromkeys(f.name for f in bp.features)) for n, bp in blueprints.items()}
        return cls(
            {n: frozenset(bp.decision.actions) for n, bp in blueprints.items()},
            features,
            {n: frozenset(names) for n, names in features.items()},
            limits,
        )


def _features(name: str, value: Any) -> str | None:
    return jv.json_object(name, value) or event_rules.feature_values(value)


# Each field's type check, in the order the reason lists them; the same types as parsing's structs.
FIELD_CHECKS: dict[str, dict[str, jv.Check]] = {
    events.DECISION: {
        "event_id": jv.string, "decision_id": jv.string, "blueprint": jv.string,
        "blueprint_version": jv.string, "unit_id": jv.string, "ts": jv.epoch_ms,
        "features": _features, "action": jv.string, "propensity": jv.number,
        "action_probs": jv.number_map("probability"), "scores": jv.number_map("score"),
        "policy_version": jv.string, "is_default": jv.boolean, "default_reason": jv.string,
        "variant": jv.string, "shadow_version": jv.string, "shadow_action": jv.string,
        "shadow_scores": jv.number_map("score"),
    },
    events.OBSERVATION: {
        "event_id": jv.string, "decision_id": jv.string, "blueprint": jv.string,
        "name": jv.string, "value": jv.number, "ts": jv.epoch_ms,
    },
}
_REQUIRED = {events.DECISION: events.DECISION_REQUIRED, events.OBSERVATION: events.OBSERVATION_REQUIRED}
# Checked whatever the kind, so an event of an unknown kind is still placed and explained.
_COMMON_CHECKS = {name: FIELD_CHECKS[events.DECISION][name] for name in ("event_id", "blueprint", "ts")}
_decode_json = msgspec.json.Decoder().decode
_UNREAD = object()  # a payload neither decoder reads


def value_reasons(
    blueprint: str | None, ts: int | None, arrival_ms: int, stream_blueprint: str, rules: Rules,
    action: str | None = None, propensity: float | None = None, features: dict | None = None,
) -> list[str]:
    """The value checks of an event; None is a value absent or of the wrong type (reported already).

    An observation has no ``action``, ``propensity`` or ``features``.
    """
    reasons = []
    if ts is not None:
        problem = event_rules.timestamp(ts, arrival_ms, rules.limits)
        if problem is not None:
            reasons.append(problem)
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


def json_reasons(doc: dict[str, Any], arrival_ms: int, stream_blueprint: str, rules: Rules) -> list[str]:
    """Every failure of a decoded JSON object: kind, missing fields, wrong types, then values."""
    kind = doc.get("kind")
    checks = FIELD_CHECKS.get(kind) if type(kind) is str else None
    reasons = []
    if checks is None:
        shown = kind if event_rules.is_text(kind) else jv.json_kind(kind)
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
    reasons += value_reasons(
        get("blueprint"), get("ts"), arrival_ms, stream_blueprint, rules,
        get("action"), get("propensity"), get("features"),
    )
    if not reasons:  # a field no check names (an extra one) holds what cannot be stored
        problem = event_rules.invalid_value(doc)
        if problem is not None:
            reasons.append(f"payload: a value {problem}")
    return reasons


def _decode(payload: bytes | str) -> tuple[object, list[str]]:
    """The decoded payload and, if msgspec refused it, its message (with Python's ``json`` reading, if any).

    Python's ``json`` reads what RFC 8259 leaves out but Python writes: ``NaN``,
    ``Infinity`` and lone surrogates in ``\\u`` escapes; the field checks then name them.
    """
    try:
        return _decode_json(payload), []
    except UnicodeError as error:
        return _UNREAD, [f"malformed JSON: not UTF-8 ({error.reason})"]
    except RecursionError:
        return _UNREAD, ["payload: nested too deeply to decode"]
    except msgspec.DecodeError as error:
        message = str(error).removeprefix("JSON is malformed: ")
        refused = [f"malformed JSON: {message[:1].lower()}{message[1:]}"]
    if "number out of range" in message.lower():  # Python would read it as an infinity, which it is not
        return _UNREAD, refused
    try:
        return json.loads(payload), refused
    except (ValueError, RecursionError):
        return _UNREAD, refused


def payload_reasons(
    payload: bytes | str | None, arrival_ms: int, stream_blueprint: str, rules: Rules
) -> tuple[list[str], dict]:
    """The reasons a payload is rejected and the object it holds (empty unless it is one)."""
    if not payload:
        return ["malformed JSON: empty payload"], {}
    too_long = event_rules.payload_size(len(payload), rules.limits)
    if too_long is not None:
        return [too_long], {}
    doc, refused = _decode(payload)
    if doc is _UNREAD:
        return refused, {}
    if type(doc) is not dict:
        return refused or [f"malformed JSON: payload is {jv.json_kind(doc)}, not an object"], {}
    return json_reasons(doc, arrival_ms, stream_blueprint, rules) or refused, doc
