"""Faults the simulator can plant, each from a known day, to check that the monitor sees them.

* ``shift``: a numeric feature's logged value is multiplied by ``factor`` and moved by
  ``offset`` from ``day`` on (a logging change: the outcomes still follow the true value);
* ``stop_feedback_day``: no observation due that day is ever sent (a broken pipeline);
* ``drop``: a feature stops being filled from ``day`` on (NaN for numbers, "" for
  categories: what product code sends when it lost the value);
* ``default``: on ``day``, a hashed share of units has no entry in the active policy,
  so the SDK serves them the default (``unknown_unit``), as after a partial publish.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from looper_common.contracts import policy_store
from looper_common.contracts.blueprint import Blueprint
from looper_common.simulate.base import Features


@dataclass(frozen=True)
class FeatureShift:
    feature: str
    day: int
    factor: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class FeatureDrop:
    feature: str
    day: int


@dataclass(frozen=True)
class DefaultShare:
    share: float
    day: int


@dataclass(frozen=True)
class Faults:
    shift: FeatureShift | None = None
    stop_feedback_day: int | None = None
    drop: FeatureDrop | None = None
    default: DefaultShare | None = None

    def check(self, blueprint: Blueprint) -> None:
        """A fault on a feature the blueprint lacks, or a share outside (0, 1], is an error naming it."""
        types = {f.name: f.type for f in blueprint.features}
        if self.shift is not None and types.get(self.shift.feature) not in ("float", "int"):
            raise ValueError(f"faults.shift.feature: {self.shift.feature!r} is not a numeric feature "
                             f"of {blueprint.name}")
        if self.drop is not None and types.get(self.drop.feature) not in ("float", "category"):
            raise ValueError(f"faults.drop.feature: {self.drop.feature!r} is not a float or category feature "
                             f"of {blueprint.name}")
        if self.default is not None and not 0.0 < self.default.share <= 1.0:
            raise ValueError(f"faults.default.share must be in (0, 1], got {self.default.share}")

    def features(self, blueprint: Blueprint, day: int, rows: list[Features]) -> list[Features]:
        """The day's features with the feature faults of ``day`` applied (the input is not modified)."""
        shift = self.shift if self.shift is not None and day >= self.shift.day else None
        drop = self.drop if self.drop is not None and day >= self.drop.day else None
        if shift is None and drop is None:
            return rows
        kind = {f.name: f.type for f in blueprint.features}
        out = []
        for row in rows:
            row = dict(row)
            if shift is not None:
                value = row[shift.feature] * shift.factor + shift.offset
                row[shift.feature] = int(round(value)) if kind[shift.feature] == "int" else float(value)
            if drop is not None:
                row[drop.feature] = math.nan if kind[drop.feature] == "float" else ""
            out.append(row)
        return out

    def feedback_stopped(self, day: int) -> bool:
        return self.stop_feedback_day == day

    def unpublished_units(self, blueprint: str, day: int, unit_ids: list[str]) -> list[str]:
        """The units whose policy entry goes missing on ``day`` (a stable hashed share)."""
        if self.default is None or self.default.day != day:
            return []
        limit = self.default.share * (1 << 64)
        return [u for u in unit_ids
                if int.from_bytes(hashlib.blake2b(f"{blueprint}:{u}".encode(), digest_size=8).digest(), "big") < limit]


def drop_entries(client, blueprint: str, unit_ids: list[str]) -> int:
    """The default-share fault: the active version loses ``unit_ids``' entries and its compact model.

    Without the model, an ``online``/``hybrid`` blueprint falls back to the lookup alone
    (the SDK's rule when online scoring is unavailable), so those units get the default
    (``unknown_unit``) in every serving mode. Returns how many entries were deleted.
    """
    from looper_common.sdk.online import model_key

    active = client.get(policy_store.active_key(blueprint))
    if active is None or not unit_ids:
        return 0
    version = active.decode() if isinstance(active, bytes) else active
    client.delete(model_key(blueprint, version))
    return int(client.delete(*[policy_store.entry_key(blueprint, version, u) for u in unit_ids]))
