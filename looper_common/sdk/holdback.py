"""Holdback: a stable hashed share of units is served the default, to measure a policy's real lift.

A unit is held back when BLAKE2b of ``<blueprint>:<unit_id>`` (personalized, so it is
independent of the exploration draw and of the bootstrap buckets), read as a uniform
number in [0, 1), is below the share: the same units stay held back across days,
versions and processes, and the monitor recomputes the membership from the unit id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from looper_common.contracts import events
from looper_common.contracts.blueprint import Blueprint

HOLDBACK_PERSON = b"looper.holdback"
REASON = events.HOLDBACK
_TWO_64 = float(1 << 64)


def holdback_draw(blueprint: str, unit_id: str) -> float:
    """The unit's uniform number in [0, 1) for ``blueprint``'s holdback."""
    digest = hashlib.blake2b(f"{blueprint}:{unit_id}".encode(), digest_size=8, person=HOLDBACK_PERSON).digest()
    return int.from_bytes(digest, "big") / _TWO_64


def in_holdback(blueprint: Blueprint, unit_id: str) -> bool:
    """Whether ``blueprint`` serves ``unit_id`` the default because it is in the holdback."""
    return blueprint.holdback is not None and holdback_draw(blueprint.name, unit_id) < blueprint.holdback.share


def withhold(blueprint: Blueprint, requests: Sequence[tuple[str, object]],
             entries: list[bytes | str | None]) -> list[bytes | str | None]:
    """``entries`` with the held-back units' replaced by the reason ``holdback``.

    The SDK serves a unit whose entry is a reason string the default, logged with that
    ``default_reason`` (``ServingPlan.decide``).
    """
    if blueprint.holdback is None:
        return entries
    return [REASON if in_holdback(blueprint, str(unit_id)) else entry
            for (unit_id, _), entry in zip(requests, entries, strict=True)]
