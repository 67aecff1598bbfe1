"""What one batch of decisions reads before it can be decided: the state between the SDK's steps.

``LooperClient.lookup`` fills it from the cached policy state; the caller reads
``keys`` (one MGET, blocking in the SDK, async in ``looper serve``) and hands the
entries to ``LooperClient.decide_from``, which does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from looper_common.contracts import events
from looper_common.contracts.blueprint import ExplorationSpec
from looper_common.sdk.challenger import Rollout
from looper_common.sdk.online import CompactModel
from looper_common.sdk.requests import Compiled


@dataclass(slots=True)
class Lookup:
    """One batch's served version and exploration, compact model, challenger, and keys to read."""

    compiled: Compiled
    n: int  # requests in the batch
    version: str | None = None
    override: ExplorationSpec | None = None  # the version's own exploration spec
    missing: str = events.NO_POLICY  # the default's reason for a unit without an entry
    online: CompactModel | None = None
    rollout: Rollout | None = None
    challenger_entries: list[bytes | None] | None = None
    keys: list[str] = field(default_factory=list)  # the units' entries still to read, in request order
    # made while the entries are read (DecisionSteps.prepare): what needs no entry
    prepared: bool = False
    held: list[bool] | None = None  # holdback.held_back of the requests
    rands: list[int] | None = None  # the client's random bits, one per request
    decision_ids: list[str] | None = None  # without a challenger
