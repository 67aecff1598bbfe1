"""Checks of what product code passes to the SDK: unit ids, features, decision ids, observations.

Run before anything is decided or logged, with the types the blueprint declares and
the rules ingestion applies (``contracts.event_rules``), so an event the SDK sends is
never quarantined: a ``LooperError`` names the field and gives ingestion's reason. A
feature map whose names and value types already passed skips the type checks, not the
value ones (a float can be NaN, a string hold a lone surrogate).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from looper_common.contracts import event_rules, events, ids
from looper_common.contracts.blueprint import Blueprint
from looper_common.contracts.event_rules import LooperError
from looper_common.sdk.decision_batch import ServingPlan

__all__ = [
    "Compiled", "LooperError", "check_decision_id", "check_requests", "compile_blueprint", "observation_number",
    "observation_payloads", "shown",
]

_encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
_MAX_SIGNATURES = 1_024  # feature name orders x value types remembered as checked
_TYPE_CHECKS = {
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "category": lambda v: isinstance(v, str),
}


@dataclass
class Compiled:
    """A blueprint with what the hot path needs precomputed."""

    blueprint: Blueprint
    checks: dict[str, tuple[str, object]] = field(default_factory=dict)
    stream: str = ""
    tag: int = 0
    # (feature names..., value types...) of feature maps that passed the checks: the
    # checks depend only on names and types, so a known signature needs no check.
    signatures: set[tuple[object, ...]] = field(default_factory=set)
    plan: ServingPlan | None = None
    limits: event_rules.EventLimits = event_rules.DEFAULT_LIMITS
    # a decision event's bytes beyond its unit id and features (ids, actions, probabilities)
    overhead: int = 0
    batch_features: frozenset[str] = frozenset()  # source: batch, which a request may omit


def compile_blueprint(blueprint: Blueprint, limits: event_rules.EventLimits = event_rules.DEFAULT_LIMITS) -> Compiled:
    """The blueprint with its feature checks, stream key and id tag precomputed; ``limits`` as ingestion's."""
    actions = blueprint.decision.actions
    return Compiled(
        blueprint=blueprint,
        limits=limits,
        checks={f.name: (f.type, _TYPE_CHECKS[f.type]) for f in blueprint.features},
        stream=events.stream_key(blueprint.name),
        tag=ids.blueprint_tag(blueprint.name),
        batch_features=frozenset(f.name for f in blueprint.features if f.source == "batch"),
        # generous: 600 bytes of fixed fields, per action its name and two 24-character numbers,
        # per feature its name and a 32-byte value
        overhead=600 + len(blueprint.name) + len(blueprint.version) + sum(3 * len(a) + 60 for a in actions)
        + sum(6 * len(f.name) + 32 for f in blueprint.features),
    )


def check_requests(compiled: Compiled, requests: Sequence[tuple[str, Mapping[str, object]]]) -> None:
    """Check every request's features before deciding any (nothing is logged on error)."""
    signatures = compiled.signatures
    # characters the texts may take: 6 bytes each bound any JSON escape (names and numbers are in overhead)
    room = (compiled.limits.max_event_bytes - compiled.overhead) // 6
    for unit_id, features in requests:
        if type(unit_id) is not str or not unit_id.isascii():
            _check_unit_id(compiled, unit_id)
        if (*features, *map(type, features.values())) not in signatures:
            _check_features(compiled, unit_id, features)
            if len(signatures) < _MAX_SIGNATURES:
                signatures.add((*features, *map(type, features.values())))
        size = len(unit_id)
        for value in features.values():
            kind = type(value)
            if kind is float:
                if value - value:  # NaN or an infinity (nan is truthy, a finite x - x is 0.0)
                    size = room + 1
            elif kind is str:
                size += len(value) if value.isascii() else room + 1
        if size > room:
            _check_values(compiled, unit_id, features)


def _check_unit_id(compiled: Compiled, unit_id: object) -> None:
    problem = event_rules.required_text("unit_id", unit_id)
    if problem is not None:
        raise LooperError(f"{compiled.blueprint.name}: unit {unit_id!r}: {problem}")


def _check_values(compiled: Compiled, unit_id: str, features: Mapping[str, object]) -> None:
    """What ingestion checks of values, exactly: finite numbers, valid Unicode, the event within max_event_bytes."""
    problem = event_rules.feature_values(features) or _event_size(compiled, unit_id, features)
    if problem is not None:
        raise LooperError(f"{compiled.blueprint.name}: unit {unit_id!r}: {problem}")


def _event_size(compiled: Compiled, unit_id: str, features: Mapping[str, object]) -> str | None:
    """The size rule on the decision event's unit id and features, with the fixed part bounded above."""
    size = compiled.overhead + len(json.dumps([unit_id, features], separators=(",", ":")).encode())
    return event_rules.payload_size(size, compiled.limits)


def _check_features(compiled: Compiled, unit_id: str, features: Mapping[str, object]) -> None:
    checks = compiled.checks
    if len(features) == len(checks):
        try:
            if all(checks[name][1](value) for name, value in features.items()):
                return
        except KeyError:
            pass
    bp = compiled.blueprint.name
    missing = [n for n in checks if n not in features and n not in compiled.batch_features]
    if missing:
        raise LooperError(f"{bp}: unit {unit_id!r}: missing feature(s) {missing}")
    unknown = [n for n in features if n not in checks]
    if unknown:
        raise LooperError(
            f"{bp}: unit {unit_id!r}: unknown feature(s) {unknown}; the blueprint declares {list(checks)}"
        )
    for name, value in features.items():
        ftype, check = checks[name]
        if not check(value):
            raise LooperError(
                f"{bp}: unit {unit_id!r}: feature {name!r} must be {ftype}, got {value!r}"
            )


def observation_number(name: str, value: object) -> float:
    """An observation value as a float (bools as 0/1); anything else, NaN or an infinity is a LooperError.

    The name is checked too: a string with no lone surrogate.
    """
    if type(name) is not str or not name.isascii():
        problem = event_rules.text("name", name)
        if problem is not None:
            raise LooperError(f"observation {name!r}: {problem}")
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        problem = event_rules.finite("value", number)
        if problem is not None:
            raise LooperError(f"observation {name!r}: {problem}")
        return number
    raise LooperError(f"observation {name!r} must be a number or bool, got {value!r}")



def check_decision_id(decision_id: object) -> None:
    """The decision id of an observation: a string with no lone surrogate (its size is the event's)."""
    if type(decision_id) is not str or not decision_id.isascii():
        problem = event_rules.required_text("decision_id", decision_id)
        if problem is not None:
            raise LooperError(f"observation of decision {shown(decision_id)}: {problem}")


def observation_payloads(
    compiled: Compiled, decision_id: str, observations: Mapping[str, object], ts_ms: int
) -> list[bytes]:
    """The observation events of one decision, encoded; an event ingestion would refuse is a LooperError.

    ``decision_id`` and ``ts_ms`` have been checked (:func:`check_decision_id`,
    ``events.to_epoch_ms``); here the names, values and each event's size are.
    """
    name = compiled.blueprint.name
    payloads = []
    for obs_name, value in observations.items():
        number = observation_number(obs_name, value)
        payload = _encode({
            "kind": events.OBSERVATION,
            "event_id": ids.observation_event_id(decision_id, obs_name, ts_ms, number),
            "decision_id": decision_id,
            "blueprint": name,
            "name": obs_name,
            "value": number,
            "ts": ts_ms,
        }).encode()
        if len(payload) > compiled.limits.max_event_bytes:
            problem = event_rules.payload_size(len(payload), compiled.limits)
            raise LooperError(f"observation {shown(obs_name)} of decision {shown(decision_id)}: {problem}")
        payloads.append(payload)
    return payloads


def shown(value: object) -> str:
    """A value as an error message shows it: its repr, cut after 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
