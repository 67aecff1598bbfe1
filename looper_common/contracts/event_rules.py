"""The rules an event must pass, shared by the SDK (reject at call time) and ingestion (quarantine).

One function per rule; each takes a field's name and value and returns the reason it
fails, naming the field, or None. The SDK raises :class:`LooperError` with the reason,
ingestion writes it into ``quarantine/events``, so what the SDK accepts ingestion keeps
(docs/events-and-keys.md, "What ingestion rejects"). Numbers, texts and timestamps:

- a number is finite (no NaN or infinity: JSON has neither);
- a text is a ``str`` that UTF-8 can encode (no lone surrogate such as ``"\\ud800"``);
- ``ts`` lies within :class:`EventLimits`' window around the event's arrival (for the
  SDK: now; for ingestion: the stream entry id's millisecond time) and within years
  1-9999, so every event date is one a ``datetime.date`` and a Delta partition hold;
- a payload is at most ``max_event_bytes`` long.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DAY_MS = 86_400_000
MIN_TS_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class LooperError(ValueError):
    """Bad input from product code: unknown blueprint, bad feature, observation, id or time."""


@dataclass(frozen=True)
class EventLimits:
    """Bounds of a valid event: settings' ``ingest:`` section, for ingestion and for an SDK client that reads them."""

    max_event_bytes: int = 65_536
    ts_max_past_days: int = 3_650  # SDK buffering, replays and backfills arrive late; ten years is implausible
    ts_max_future_s: int = 86_400  # clock skew between product hosts and Redis


DEFAULT_LIMITS = EventLimits()


def kind_of(value: Any) -> str:
    """What a value is, as a reason names it (a number with its value)."""
    kind = type(value)
    if kind is str:
        return "a string"
    if value is None:
        return "null"
    if kind is bool:
        return "a boolean"
    if kind is int or kind is float:
        return f"the number {value!r}"
    if kind is dict:
        return "an object"
    if kind is list:
        return "an array"
    return f"a {kind.__name__}"


def is_text(value: object) -> bool:
    """A ``str`` that UTF-8 can encode (a lone surrogate cannot be stored or sent)."""
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def text(name: str, value: Any) -> str | None:
    """A string field: a ``str`` with no lone surrogate."""
    if type(value) is not str:
        return f"{name}: expected a string, got {kind_of(value)}"
    return None if is_text(value) else f"{name}: not valid Unicode (a lone surrogate)"


def required_text(name: str, value: Any) -> str | None:
    """A required string field (an id, a name): present, a ``str`` with no lone surrogate."""
    if value is None:
        return f"missing field(s): {name}"
    return text(name, value)


def finite(name: str, value: float) -> str | None:
    """A number field: neither NaN nor an infinity."""
    return None if math.isfinite(value) else f"{name}: {value!r} is not a finite number"


def feature_values(features: Mapping[Any, Any]) -> str | None:
    """The features map: names and string values valid Unicode, numbers finite, at any depth."""
    bad_names = [repr(k) for k in features if not is_text(k)]
    if bad_names:
        return f"features: name {', '.join(bad_names)} is not valid Unicode (a lone surrogate)"
    for key, value in features.items():
        problem = invalid_value(value)
        if problem is not None:
            return f"features: {key} {problem}"
    return None


def invalid_value(value: Any) -> str | None:
    """Why a decoded JSON value (or a feature value) cannot be stored: a non-finite number or bad text."""
    kind = type(value)
    if kind is float:
        return None if math.isfinite(value) else f"is not a finite number ({value!r})"
    if kind is str:
        return None if is_text(value) else "is not valid Unicode (a lone surrogate)"
    if kind is dict:
        for key, item in value.items():
            problem = "has a key that is not valid Unicode" if not is_text(key) else invalid_value(item)
            if problem is not None:
                return problem
    elif kind is list:
        for item in value:
            problem = invalid_value(item)
            if problem is not None:
                return problem
    return None


def timestamp(ts: int, arrival_ms: int, limits: EventLimits = DEFAULT_LIMITS) -> str | None:
    """``ts`` (epoch ms) within the window around ``arrival_ms`` and within years 1-9999."""
    if not MIN_TS_MS <= ts <= MAX_TS_MS:
        return f"ts: {ts} is outside years 1-9999"
    if ts < arrival_ms - limits.ts_max_past_days * DAY_MS:
        return f"ts: {ts} is more than {limits.ts_max_past_days} days before its arrival ({arrival_ms})"
    if ts > arrival_ms + limits.ts_max_future_s * 1000:
        return f"ts: {ts} is more than {limits.ts_max_future_s} s after its arrival ({arrival_ms})"
    return None


def payload_size(n_bytes: int, limits: EventLimits = DEFAULT_LIMITS) -> str | None:
    """A payload at most ``max_event_bytes`` long."""
    if n_bytes > limits.max_event_bytes:
        return f"payload: {n_bytes} bytes exceeds max_event_bytes ({limits.max_event_bytes})"
    return None
