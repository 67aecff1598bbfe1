"""The event contract (DESIGN.md §3) shared by the SDK, the simulator and ingestion.

Events travel as one JSON document per stream entry, under the field ``e``, on one
Redis Stream per blueprint. ``ts`` is integer epoch milliseconds, UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

STREAM_PREFIX = "looper:events:"
PAYLOAD_FIELD = "e"
INGEST_GROUP = "looper-ingest"

DECISION = "decision"
OBSERVATION = "observation"

DECISION_REQUIRED = (
    "event_id", "decision_id", "blueprint", "blueprint_version", "unit_id", "ts",
    "features", "action", "propensity", "action_probs", "is_default",
)
DECISION_OPTIONAL = ("scores", "policy_version")
OBSERVATION_REQUIRED = ("event_id", "decision_id", "blueprint", "name", "value", "ts")


def stream_key(blueprint: str) -> str:
    """The Redis Stream that carries a blueprint's events."""
    return f"{STREAM_PREFIX}{blueprint}"


def blueprint_of_stream(key: str) -> str:
    return key.removeprefix(STREAM_PREFIX)


def to_epoch_ms(ts: datetime | int | float | None) -> int:
    """Epoch milliseconds of ``ts`` (now when None; naive datetimes are taken as UTC)."""
    if ts is None:
        return int(datetime.now(UTC).timestamp() * 1000)
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return int(ts.timestamp() * 1000)
    if isinstance(ts, bool):
        raise TypeError("ts must be a datetime or epoch milliseconds, not bool")
    return int(ts)
