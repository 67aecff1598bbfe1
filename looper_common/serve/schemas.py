"""The JSON bodies of the HTTP API, as pydantic models (they are the OpenAPI document).

The shapes follow the SDK call they map to: ``features`` and observation values keep
their JSON types (true/false, integers, numbers, strings), which the SDK then checks
against the blueprint exactly as it checks a Python caller's. ``ts`` is epoch
milliseconds (UTC), the SDK's own unit; omitted, it is the time of the request. JSON has
one number type, so an integral number (``3.0``) counts as an integer wherever an
integer is asked for (``ts``, ``int`` features: see ``service``).
"""

from __future__ import annotations

import time
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)
from pydantic.types import Strict

from looper_common.contracts.event_rules import DAY_MS, DEFAULT_LIMITS

MAX_BATCH = 1_000  # decisions per batch request: one MGET and one stream script call


def _utf8(text: str) -> str:
    """Refuse strings JSON can carry but UTF-8 cannot (lone surrogates from ``\\ud800`` escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return text


def _integral(value: object) -> object:
    """JSON has one number type: 1.0 is the integer 1 (as JSON Schema's "integer" says)."""
    if type(value) is float and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


Text = Annotated[StrictStr, AfterValidator(_utf8)]
FeatureValue = StrictBool | StrictInt | StrictFloat | Annotated[StrictStr, AfterValidator(_utf8)]
ObservationValue = StrictBool | StrictInt | StrictFloat
# The SDK accepts a ts inside a window around the time it is sent (contracts.event_rules):
# the document states that window as of the server's start, a day narrower on the past
# side so that it stays inside the SDK's for the first day the server runs.
_STARTED_MS = int(time.time() * 1000)
TS_MIN = _STARTED_MS - (DEFAULT_LIMITS.ts_max_past_days - 1) * DAY_MS
TS_MAX = _STARTED_MS + DEFAULT_LIMITS.ts_max_future_s * 1000
EpochMs = Annotated[
    int, Strict(),
    Field(ge=TS_MIN, le=TS_MAX, description=(
        f"epoch milliseconds, UTC; at most {DEFAULT_LIMITS.ts_max_past_days} days before and "
        f"{DEFAULT_LIMITS.ts_max_future_s} s after the time of the request")),
    BeforeValidator(_integral),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecisionRequest(_Body):
    """``LooperClient.get_decision(blueprint, unit_id, features, ts=ts)``."""

    blueprint: Text = Field(examples=["notification_send"])
    unit_id: Text = Field(examples=["user-42"])
    features: dict[Text, FeatureValue] = Field(
        examples=[{"days_since_last_visit": 3.5, "country": "us"}],
        description="every feature the blueprint declares, with its type",
    )
    ts: EpochMs | None = None


class BatchItem(_Body):
    unit_id: Text
    features: dict[Text, FeatureValue]
    ts: EpochMs | None = None


class DecisionBatchRequest(_Body):
    """``LooperClient.get_decisions(blueprint, [(unit_id, features), ...], ts=[...])``."""

    blueprint: Text
    requests: list[BatchItem] = Field(max_length=MAX_BATCH)


class ObservationRequest(_Body):
    """``LooperClient.log_observations(decision_id, observations, ts=ts, blueprint=blueprint)``."""

    decision_id: Text = Field(examples=["0193f5e0-7c1a-8000-9a3b-1f2e3d4c5b6a"])
    observations: dict[Text, ObservationValue] = Field(examples=[{"click": 1}])
    ts: EpochMs | None = None
    blueprint: Text | None = Field(
        default=None, description="only needed for a decision id this server did not issue"
    )


class DecisionOut(BaseModel):
    """A served decision (the SDK's ``Decision``); also logged as the decision event."""

    model_config = ConfigDict(extra="allow")

    decision_id: str
    blueprint: str
    unit_id: str
    action: str
    propensity: float | None
    action_probs: dict[str, float | None]
    scores: dict[str, float | None] | None
    policy_version: str | None
    is_default: bool
    ts: int


class DecisionBatchOut(BaseModel):
    decisions: list[DecisionOut]


class ObservationOut(BaseModel):
    accepted: int = Field(description="observation events written (or kept for retry)")


class Health(BaseModel):
    status: str
    dropped_events: int = 0


class Problem(BaseModel):
    detail: str
