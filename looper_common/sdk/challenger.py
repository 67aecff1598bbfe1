"""A challenger on live traffic beside the champion: ``shadow`` (scored and logged) or ``canary`` (served).

``publishing.challenger`` writes ``policy_store.challenger_key``: the challenger's
policy version, its stage and the canary's share. :class:`Challengers` caches it per
blueprint for the same time as the active pointer. The challenger's entries come the
way the champion's do (``serving.mode``: its compact model scores the request's
features, or its per-unit entries are looked up). ``shadow``: every decision is the
champion's, and its event also carries ``shadow_version``, ``shadow_action`` (the
challenger's greedy action) and ``shadow_scores``. ``canary``: a unit is the canary's
when its holdback draw (``holdback.holdback_draw``, the one hash of unit membership)
is at least ``1 - share``; its decision is made from the challenger's entry with the
challenger's version, exploration and propensities, and its event says
``"variant":"canary"``. The holdback takes the draws below its share, so a unit is
never in both while the shares sum to at most 1; a held-back unit stays held back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import msgspec
import redis

from looper_common.contracts import events, policy_store
from looper_common.contracts.blueprint import Blueprint
from looper_common.contracts.redis_conn import batch_get
from looper_common.sdk.decision_batch import Decision, ServingPlan, decode_entry, encode_json
from looper_common.sdk.holdback import holdback_draw
from looper_common.sdk.online import OnlineModels

log = logging.getLogger(__name__)
_VARIANT = b',"variant":"canary"}'
Requests = Sequence[tuple[str, Mapping[str, object]]]


class Rollout(NamedTuple):
    version: str
    stage: str  # shadow | canary
    share: float | None


def in_canary(blueprint: str, unit_id: str, share: float) -> bool:
    """Whether ``unit_id`` is in ``blueprint``'s canary share (the top of its holdback draw)."""
    return holdback_draw(blueprint, unit_id) >= 1.0 - share


def _parse(blueprint: str, raw: bytes) -> Rollout | None:
    try:
        doc = json.loads(raw)
        rollout = Rollout(str(doc["version"]), doc["stage"], doc.get("share"))
        if rollout.stage == "shadow" or (rollout.stage == "canary" and 0.0 < float(rollout.share) < 1.0):
            return rollout
    except (ValueError, KeyError, TypeError):
        pass
    log.warning("%s: the challenger key holds %r, not a challenger: none served", blueprint, raw[:200])
    return None


class Challengers:
    """Each blueprint's published challenger (or None), its compact models and serving plans."""

    def __init__(self, client: redis.Redis, ttl_s: float) -> None:
        self._redis = client
        self._mget = batch_get(client)  # one MGET, or one per slot on a cluster (entries spread over slots)
        self._ttl = ttl_s
        self._cached: dict[str, tuple[float, Rollout | None]] = {}
        self._models = OnlineModels(client)  # apart from the champion's: one version per blueprint each
        self._plans: dict[str, ServingPlan] = {}
        self.asked_redis = False  # whether the last get() or entries() read Redis (not only a cache)

    def get(self, blueprint: str) -> Rollout | None:
        """The blueprint's challenger; a Redis error propagates (the caller serves the default)."""
        now = time.monotonic()
        cached = self._cached.get(blueprint)
        self.asked_redis = False
        if cached is not None and cached[0] > now:
            return cached[1]
        self.asked_redis = True
        raw = self._redis.get(policy_store.challenger_key(blueprint))
        rollout = _parse(blueprint, raw) if raw is not None else None
        self._cached[blueprint] = (now + self._ttl, rollout)
        return rollout

    def entries(self, bp: Blueprint, rollout: Rollout, requests: Requests) -> list[bytes | None]:
        """The challenger's entries for ``requests``, online or looked up as ``serving.mode`` says."""
        mode = bp.serving.mode
        online = self._models.get(bp.name, rollout.version) if mode != "lookup" else None
        entries: list[bytes | None] = [None] * len(requests)
        if requests and (online is None or mode == "hybrid"):
            prefix = policy_store.entry_key(bp.name, rollout.version, "")
            entries = self._mget([prefix + str(u) for u, _ in requests])
            self.asked_redis = True
        return online.entries(requests, entries) if online is not None else entries

    def plan(self, champion: ServingPlan, rollout: Rollout) -> ServingPlan:
        """The canary's serving plan: the challenger's version, the blueprint's exploration."""
        plan = self._plans.get(champion.blueprint.name)
        bp = champion.blueprint
        if plan is None or plan.version != rollout.version or plan.blueprint is not bp:
            plan = self._plans[bp.name] = ServingPlan(bp, rollout.version, bp.policy.exploration, champion.tag)
        return plan


def shadow_fields(version: bytes, raw: bytes | None, actions: frozenset[str]) -> bytes:
    """The ``shadow_*`` fields for a challenger entry (nothing when it has none or it is corrupt)."""
    if raw is None or raw.__class__ is str:
        return b""
    try:
        action, scores = decode_entry(raw)
    except msgspec.DecodeError:
        return b""
    if action not in actions:
        return b""
    return (b',"shadow_version":' + version + b',"shadow_action":' + encode_json(action)
            + b',"shadow_scores":' + encode_json(scores))


def decide_with_challenger(
    plan: ServingPlan, challengers: Challengers, rollout: Rollout, requests: Requests, stamps: Sequence[int],
    entries: Sequence[bytes | str | None], challenger_entries: Sequence[bytes | None],
    rands: Sequence[int] | None, missing: str, defaults: dict[str, int] | None,
) -> tuple[list[Decision], list[bytes]]:
    """``plan.decide`` with the challenger shadowing every decision, or serving the canary's units."""
    bp = plan.blueprint
    if rollout.stage == "shadow":
        decisions, payloads = plan.decide(requests, stamps, entries, rands, missing, defaults)
        version, actions = encode_json(rollout.version), frozenset(bp.decision.actions)
        for i, raw in enumerate(challenger_entries):
            extra = shadow_fields(version, raw, actions)
            if extra:
                payloads[i] = payloads[i][:-1] + extra + b"}"
        return decisions, payloads
    canary = [entry.__class__ is not str and in_canary(bp.name, str(unit), rollout.share)
              for (unit, _), entry in zip(requests, entries, strict=True)]
    if not any(canary):
        return plan.decide(requests, stamps, entries, rands, missing, defaults)
    picked = [[i for i, c in enumerate(canary) if c is side] for side in (False, True)]
    out: list[tuple[Decision, bytes] | None] = [None] * len(requests)
    sides = ((plan, entries), (challengers.plan(plan, rollout), challenger_entries))
    for side, (served_by, source) in enumerate(sides):
        rows = picked[side]
        if not rows:
            continue
        made, sent = served_by.decide(
            [requests[i] for i in rows], [stamps[i] for i in rows], [source[i] for i in rows],
            [rands[i] for i in rows] if rands is not None else None,
            events.UNKNOWN_UNIT if side else missing, defaults,
        )
        for i, d, p in zip(rows, made, sent, strict=True):
            out[i] = (d, p[:-1] + _VARIANT if side else p)
    return [d for d, _ in out], [p for _, p in out]
