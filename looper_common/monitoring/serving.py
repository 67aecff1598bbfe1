"""Serving health of one day's decisions: versions served, defaults and why, logged propensities, replay.

A default is *unexpected* unless its reason is one the platform intends (``no_policy``
before the first publish, ``holdback``). Where the decisions carry no
``default_reason``, a default counts as unexpected on a day a policy served others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from looper_common.monitoring.metrics import Metric
from looper_common.sdk.exploration import replay

EXPECTED_DEFAULTS = frozenset({"no_policy", "holdback"})
TOLERANCE = 1e-9


def logged_action_probability(action_probs: pa.ChunkedArray, action: pa.ChunkedArray) -> np.ndarray:
    """``action_probs[action]`` of every decision (NaN where the action has no entry)."""
    probs = pa.concat_arrays([c for c in action_probs.chunks]) if action_probs.num_chunks else pa.array(
        [], action_probs.type)
    offsets = probs.offsets.to_numpy(zero_copy_only=False)
    parents = np.repeat(np.arange(len(probs)), np.diff(offsets))
    keys = probs.keys.to_numpy(zero_copy_only=False)
    values = probs.items.to_numpy(zero_copy_only=False)
    if len(keys) != len(parents):  # a sliced array's keys are its whole child's
        keys, values = keys[offsets[0]:offsets[-1]], values[offsets[0]:offsets[-1]]
    chosen = np.asarray(action.to_numpy(zero_copy_only=False), dtype=object)
    match = keys == chosen[parents]
    out = np.full(len(chosen), np.nan)
    out[parents[match]] = values[match]
    return out


def _default_metrics(decisions: pa.Table, known_units: pa.Array | None, held: np.ndarray | None) -> list[Metric]:
    n = decisions.num_rows
    is_default = decisions["is_default"].to_numpy(zero_copy_only=False).astype(bool)
    if held is not None:  # the holdback's defaults are intended whatever reason they carry
        is_default_unintended = is_default & ~held
    else:
        is_default_unintended = is_default
    # a unit first seen today has no entry yet: its default is expected (a new user, not a fault)
    known = (np.ones(n, bool) if known_units is None
             else pc.is_in(decisions["unit_id"], value_set=known_units).to_numpy(zero_copy_only=False).astype(bool))
    if "default_reason" in decisions.column_names:
        reason = np.asarray([r or "unknown" for r in decisions["default_reason"].to_pylist()], dtype=object)
        reasons = Counter(reason[is_default].tolist())
        intended = np.isin(reason, list(EXPECTED_DEFAULTS)) | ((reason == "unknown_unit") & ~known)
        unexpected = int((is_default_unintended & ~intended).sum())
        detail = "by default_reason; unknown_unit of a unit first seen today is expected"
    else:
        reasons = Counter()
        unexpected = int((is_default_unintended & known).sum()) if not is_default.all() else 0
        detail = "no default_reason logged: defaults of units seen before, on a day a policy served others"
    out = [Metric("default_share", unexpected / n, None, detail),
           Metric("default_share_all", float(is_default.mean()))]
    out += [Metric("default_reason_share", count / n, reason) for reason, count in sorted(reasons.items())]
    return out


def replay_sample(decisions: pa.Table, size: int) -> pa.Table:
    """The ``size`` decisions with the smallest ids (a fixed sample: a rerun replays the same ones)."""
    if decisions.num_rows <= size:
        return decisions
    order = pc.sort_indices(decisions["decision_id"])[:size]
    return decisions.take(order)


def serving_health(decisions: pa.Table, actions: Sequence[str], sample_size: int,
                   known_units: pa.Array | None = None, held: np.ndarray | None = None) -> list[Metric]:
    """Decisions per version, default shares, propensity == action_probs[action], replayed draws.

    ``known_units``: the units decided for before today (None: every unit counts as known);
    ``held``: which decisions' units are in the blueprint's holdback.
    """
    if decisions.num_rows == 0:
        return [Metric("decisions", 0.0)]
    out = [Metric("decisions", float(decisions.num_rows))]
    counts = pc.value_counts(decisions["policy_version"]).to_pylist()
    versions = {c["values"] or "default": float(c["counts"]) for c in counts}
    out += [Metric("decisions_by_version", c, v) for v, c in sorted(versions.items())]
    out += _default_metrics(decisions, known_units, held)
    logged = logged_action_probability(decisions["action_probs"], decisions["action"])
    propensity = decisions["propensity"].to_numpy(zero_copy_only=False)
    bad = ~(np.abs(logged - propensity) <= TOLERANCE)
    out.append(Metric("propensity_mismatch", float(bad.sum()), None, f"of {decisions.num_rows} decisions"))
    sample = replay_sample(decisions.select(["decision_id", "action", "action_probs"]), sample_size)
    mismatches = sum(
        replay({"decision_id": row["decision_id"], "action_probs": dict(row["action_probs"])}, actions)
        != row["action"]
        for row in sample.to_pylist()
    )
    out.append(Metric("replay_mismatch", float(mismatches), None, f"of {sample.num_rows} replayed"))
    return out
