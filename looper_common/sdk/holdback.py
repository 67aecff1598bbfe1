"""Holdback: a stable hashed share of units is served the default, to measure a policy's real lift.

A unit is held back when BLAKE2b of ``<blueprint>:<unit_id>`` (personalized, so it is
independent of the exploration draw and of the bootstrap buckets), read as a uniform
number in [0, 1), is below the share: the same units stay held back across days,
versions and processes, and the monitor recomputes the membership from the unit id.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

from looper_common.contracts import events
from looper_common.contracts.blueprint import Blueprint

HOLDBACK_PERSON = b"looper.holdback"
REASON = events.HOLDBACK
_TWO_64 = float(1 << 64)


@functools.lru_cache(maxsize=256)
def _prefix_hash(blueprint: str) -> hashlib.blake2b:
    """BLAKE2b (8 bytes, personalized) after ``<blueprint>:``: a copy, updated with a unit id, is its draw's hash."""
    return hashlib.blake2b(f"{blueprint}:".encode(), digest_size=8, person=HOLDBACK_PERSON)


def holdback_draw(blueprint: str, unit_id: str) -> float:
    """The unit's uniform number in [0, 1) for ``blueprint``'s holdback."""
    h = _prefix_hash(blueprint).copy()
    h.update(f"{unit_id}".encode())
    return int.from_bytes(h.digest(), "big") / _TWO_64


def in_holdback(blueprint: Blueprint, unit_id: str) -> bool:
    """Whether ``blueprint`` serves ``unit_id`` the default because it is in the holdback."""
    return blueprint.holdback is not None and holdback_draw(blueprint.name, unit_id) < blueprint.holdback.share


def held_back(blueprint: Blueprint, requests: Sequence[tuple[str, object]]) -> list[bool] | None:
    """Per request, whether its unit is in the holdback (:func:`in_holdback` inlined); None without one."""
    if blueprint.holdback is None:
        return None
    share, hasher, from_bytes = blueprint.holdback.share, _prefix_hash(blueprint.name).copy, int.from_bytes
    out = []
    for unit_id, _ in requests:
        h = hasher()
        h.update(f"{unit_id}".encode())
        out.append(from_bytes(h.digest(), "big") / _TWO_64 < share)
    return out


def withhold(blueprint: Blueprint, requests: Sequence[tuple[str, object]],
             entries: list[bytes | str | None], held: list[bool] | None = None) -> list[bytes | str | None]:
    """``entries`` with the held-back units' replaced by the reason ``holdback``.

    The SDK serves a unit whose entry is a reason string the default, logged with that
    ``default_reason`` (``ServingPlan.decide``). ``held``: :func:`held_back` of the
    requests, when it was computed already.
    """
    if blueprint.holdback is None:
        return entries
    if held is None:
        held = held_back(blueprint, requests)
    return [REASON if h else entry for h, entry in zip(held, entries, strict=True)]
