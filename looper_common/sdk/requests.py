"""Checks of what product code passes to the SDK: blueprint names, features, observation values.

Run before anything is decided or logged, with the types the blueprint declares; a
feature map whose names and value types already passed is not checked again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from looper_common.contracts import events, ids
from looper_common.contracts.blueprint import Blueprint
from looper_common.sdk.decision_batch import ServingPlan

_MAX_SIGNATURES = 1_024  # feature name orders x value types remembered as checked
_TYPE_CHECKS = {
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "category": lambda v: isinstance(v, str),
}


class LooperError(ValueError):
    """Bad input from product code: unknown blueprint, bad feature or observation."""


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


def compile_blueprint(blueprint: Blueprint) -> Compiled:
    """The blueprint with its feature checks, stream key and id tag precomputed."""
    return Compiled(
        blueprint=blueprint,
        checks={f.name: (f.type, _TYPE_CHECKS[f.type]) for f in blueprint.features},
        stream=events.stream_key(blueprint.name),
        tag=ids.blueprint_tag(blueprint.name),
    )


def check_requests(compiled: Compiled, requests: Sequence[tuple[str, Mapping[str, object]]]) -> None:
    """Check every request's features before deciding any (nothing is logged on error)."""
    signatures = compiled.signatures
    for unit_id, features in requests:
        if (*features, *map(type, features.values())) not in signatures:
            _check_features(compiled, unit_id, features)
            if len(signatures) < _MAX_SIGNATURES:
                signatures.add((*features, *map(type, features.values())))


def _check_features(compiled: Compiled, unit_id: str, features: Mapping[str, object]) -> None:
    checks = compiled.checks
    if len(features) == len(checks):
        try:
            if all(checks[name][1](value) for name, value in features.items()):
                return
        except KeyError:
            pass
    bp = compiled.blueprint.name
    missing = [n for n in checks if n not in features]
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
    """An observation value as a float (bools as 0/1); anything else is a LooperError."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    raise LooperError(f"observation {name!r} must be a number or bool, got {value!r}")
