"""The event contract (DESIGN.md §3) shared by the SDK, the simulator and ingestion.

Events travel as one JSON document per stream entry, under the field ``e``, on one
Redis Stream per blueprint. ``ts`` is integer epoch milliseconds, UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from looper_common.contracts import event_rules
from looper_common.contracts.event_rules import LooperError

STREAM_PREFIX = "looper:events:"
PAYLOAD_FIELD = "e"
INGEST_GROUP = "looper-ingest"

DECISION = "decision"
OBSERVATION = "observation"

DECISION_REQUIRED = (
    "event_id", "decision_id", "blueprint", "blueprint_version", "unit_id", "ts",
    "features", "action", "propensity", "action_probs", "is_default",
)
# a challenger on live traffic (contracts/rollout_spec.py): ``variant`` is "canary" for a
# canary unit's decision; the shadow_* fields carry the shadow challenger's version, the
# action it would have taken and its scores, on the decisions the champion served
ROLLOUT_FIELDS = ("variant", "shadow_version", "shadow_action", "shadow_scores")
DECISION_OPTIONAL = ("scores", "policy_version", "default_reason", *ROLLOUT_FIELDS)
CANARY = "canary"  # ``variant`` of a decision served by the canary challenger

# Why a decision was served the blueprint's default action: a default decision event's
# ``default_reason`` (DESIGN.md §3).
NO_POLICY = "no_policy"  # no active policy version
UNKNOWN_UNIT = "unknown_unit"  # the active version has no entry for the unit
REDIS_ERROR = "redis_error"  # reading the pointer or the entry failed
CORRUPT_ENTRY = "corrupt_entry"  # the unit's entry is not a valid policy entry
CIRCUIT_OPEN = "circuit_open"  # Redis failed recently: not asked, for a back-off period
HOLDBACK = "holdback"  # the unit is in the blueprint's holdback share
DEFAULT_REASONS = (NO_POLICY, UNKNOWN_UNIT, REDIS_ERROR, CORRUPT_ENTRY, CIRCUIT_OPEN, HOLDBACK)
OBSERVATION_REQUIRED = ("event_id", "decision_id", "blueprint", "name", "value", "ts")


def stream_key(blueprint: str) -> str:
    """The Redis Stream that carries a blueprint's events: ``looper:events:{<blueprint>}`` (hash-tagged)."""
    return f"{STREAM_PREFIX}{{{blueprint}}}"


def legacy_stream_key(blueprint: str) -> str:
    """The blueprint's stream of the layout before the hash tag, drained by ingestion until empty."""
    return f"{STREAM_PREFIX}{blueprint}"


def stream_keys(blueprint: str) -> tuple[str, str]:
    """Every stream a blueprint's events may wait in: its own, then the legacy one."""
    return stream_key(blueprint), legacy_stream_key(blueprint)


def sdk_stats_key(blueprint: str) -> str:
    """Hash of the SDK's counters for a blueprint (decisions, defaults by reason, events sent and dropped)."""
    return f"looper:sdk:{blueprint}:stats"


def blueprint_of_stream(key: str) -> str:
    """The blueprint whose events ``key`` carries (either layout)."""
    name = key.removeprefix(STREAM_PREFIX)
    return name[1:-1] if name.startswith("{") and name.endswith("}") else name


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def to_epoch_ms(ts: datetime | int | float | None, limits: event_rules.EventLimits = event_rules.DEFAULT_LIMITS) -> int:
    """Epoch milliseconds of ``ts`` (now when None; naive datetimes are taken as UTC).

    A ``ts`` ingestion would quarantine (not finite, not a time, outside the window around
    now that ``event_rules.timestamp`` allows) is a :class:`LooperError` naming ``ts``.
    """
    if ts is None:
        return _now_ms()
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        ms = int(ts.timestamp() * 1000)
    elif isinstance(ts, bool) or not isinstance(ts, int | float):
        raise LooperError(f"ts: expected a datetime or epoch milliseconds, got {event_rules.kind_of(ts)}")
    elif isinstance(ts, float) and not math.isfinite(ts):
        raise LooperError(event_rules.finite("ts", ts))
    else:
        ms = int(ts)
    problem = event_rules.timestamp(ms, _now_ms(), limits)
    if problem is not None:
        raise LooperError(problem)
    return ms
