"""Online evaluation: the realized mean reward per served policy version, the default and the holdback.

Over the examples of the objective label that matured on the run date, each group's
mean reward comes with a bootstrap percentile interval over hash buckets of the
decision id (``decision_science.bootstrap``); every group is resampled with the same
bucket draws, so the lift over the holdback is a paired difference. The lift is by
intent to treat: every unit outside the holdback, whatever it was served (a new unit's
default included), against the held-back units. Next to each version stands the OPE
value its champion was promoted on (``gold/alias_history``), so the promise can be
checked against what happened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from looper_common.contracts.blueprint import Blueprint
from looper_common.decision_science.bootstrap import (
    assign_buckets,
    decision_hashes,
    interval,
    resample_counts,
)
from looper_common.sdk.holdback import in_holdback

BUCKETS = 64
N_BOOTSTRAP = 400
ALPHA = 0.05
_MODEL_VERSION = re.compile(r"^\d{8}-m(\d+)-")


@dataclass(frozen=True)
class OnlineValue:
    """One group's realized mean reward with its interval, and the OPE estimate made before promotion."""

    # a policy version, "policy" (all versions), "default" (outside the holdback), "holdback",
    # "outside_holdback" (every unit outside it, whatever served) or "lift_over_holdback"
    name: str
    decisions: int
    mean: float | None
    lower: float | None
    upper: float | None
    ope_estimate: float | None = None
    ope_lower: float | None = None
    ope_upper: float | None = None


def model_version_of(policy_version: str) -> str | None:
    """The registry version in a published policy version (``<date>-m<version>-...``)."""
    match = _MODEL_VERSION.match(policy_version)
    return match.group(1) if match else None


def ope_promises(alias_history: pa.Table, model: str) -> dict[str, tuple[float, float, float]]:
    """Per model version, the DR value (estimate, lower, upper) it was promoted to champion on."""
    out = {}
    for row in sorted(alias_history.to_pylist(), key=lambda r: r["ts"]):
        metrics = dict(row["metrics"] or [])
        if row["model"] == model and row["alias"] == "champion" and "ope.challenger.dr" in metrics:
            out[row["version"]] = (metrics["ope.challenger.dr"], metrics.get("ope.challenger.dr_lower", np.nan),
                                   metrics.get("ope.challenger.dr_upper", np.nan))
    return out


def _groups(blueprint: Blueprint, examples: pa.Table) -> dict[str, np.ndarray]:
    """Which examples each group holds; with a holdback, its two arms split by unit, not by what was served."""
    versions = np.asarray([v or "" for v in examples["policy_version"].to_pylist()], dtype=object)
    is_default = examples["is_default"].to_numpy(zero_copy_only=False).astype(bool)
    held = (np.zeros(len(versions), bool) if blueprint.holdback is None else
            np.fromiter((in_holdback(blueprint, u) for u in examples["unit_id"].to_pylist()), bool, len(versions)))
    groups = {str(v): (versions == v) & ~is_default for v in sorted(set(versions[~is_default]))}
    groups["policy"] = ~is_default
    groups["default"] = is_default & ~held
    if blueprint.holdback is not None:
        groups["holdback"] = held
        groups["outside_holdback"] = ~held
    return groups


def online_value(blueprint: Blueprint, examples: pa.Table, promises: dict[str, tuple[float, float, float]],
                 seed: int = 0) -> list[OnlineValue]:
    """The groups' realized means with intervals, and the lift over the holdback when there is one."""
    objective = examples.filter(pc.equal(examples["label"], blueprint.objectives.maximize))
    if objective.num_rows == 0:
        return []
    reward = objective["value"].to_numpy(zero_copy_only=False)
    bucket = assign_buckets(decision_hashes(objective["decision_id"].to_pylist()), BUCKETS, seed)
    counts = resample_counts(BUCKETS, N_BOOTSTRAP, seed)
    out, replicas = [], {}
    for name, mask in _groups(blueprint, objective).items():
        sums = np.bincount(bucket[mask], weights=reward[mask], minlength=BUCKETS)
        sizes = np.bincount(bucket[mask], minlength=BUCKETS).astype(float)
        if sizes.sum() == 0:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            replicas[name] = (counts @ sums) / (counts @ sizes)
        iv = interval(float(sums.sum() / sizes.sum()), replicas[name], ALPHA)
        promise = promises.get(model_version_of(name) or "", (None, None, None))
        out.append(OnlineValue(name, int(sizes.sum()), iv.value, iv.lower, iv.upper, *promise))
    if "holdback" in replicas and "outside_holdback" in replicas:
        treated, held = (next(v for v in out if v.name == n) for n in ("outside_holdback", "holdback"))
        iv = interval(treated.mean - held.mean, replicas["outside_holdback"] - replicas["holdback"], ALPHA)
        out.append(OnlineValue("lift_over_holdback", treated.decisions + held.decisions, iv.value, iv.lower,
                               iv.upper))
    return out
