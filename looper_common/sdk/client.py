"""The product-facing SDK: ``get_decision`` and ``log_observations``.

A decision costs one GET (the unit's published entry) and one XADD (the decision
event); the active-version pointer is cached for ``pointer_ttl_s``, with the
version's own exploration spec when it was published with one (else the
blueprint's applies). When Redis fails, the unit is unknown or nothing is published,
the blueprint's default action is served (with the blueprint's exploration) and
flagged ``is_default``; events that could not be sent are kept in a bounded buffer
and retried on the next call.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import redis

from looper_common.contracts import events, ids, policy_store
from looper_common.contracts.blueprint import Blueprint, ExplorationSpec, load_blueprints
from looper_common.sdk.active_policy import ActivePolicies
from looper_common.sdk.decision_batch import Decision, ServingPlan, encode_decision_event
from looper_common.sdk.online import OnlineModels
from looper_common.sdk.redis_batches import BatchWriter
from looper_common.sdk.requests import Compiled, LooperError, check_requests, compile_blueprint, observation_number

__all__ = ["Decision", "LooperClient", "LooperError"]

log = logging.getLogger(__name__)
_FIELD = events.PAYLOAD_FIELD.encode()
_encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode

Timestamp = datetime | int | float | None
class LooperClient:
    """Decisions and observations for every blueprint known to this process.

    Args:
        redis_url: Redis holding published policies and event streams; defaults to the
            environment's settings (``conf/<LOOPER_ENV>.yaml``).
        blueprints: a folder of blueprint YAML files or already-loaded blueprints.
        pointer_ttl_s: how long the active policy version (and its exploration) is cached.
        max_unsent: events kept for retry while Redis is unreachable.
        random_bits: source of 64-bit randomness for decision ids (and so for
            exploration); pass ``random.Random(seed).getrandbits`` to make a simulation
            reproducible. Default: the OS.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        blueprints: str | Path | Mapping[str, Blueprint] | None = None,
        password: str | None = None,
        pointer_ttl_s: float = 1.0,
        socket_timeout: float = 0.5,
        max_unsent: int = 100_000,
        random_bits: Callable[[int], int] | None = None,
    ) -> None:
        if redis_url is None or blueprints is None:
            from looper_common.contracts.config import load_settings

            settings = load_settings()
            redis_url = redis_url or settings.redis.url
            password = password or settings.redis.password
            blueprints = blueprints if blueprints is not None else settings.blueprints_dir
        if not isinstance(blueprints, Mapping):
            blueprints = load_blueprints(blueprints)
        self._blueprints = {name: compile_blueprint(bp) for name, bp in blueprints.items()}
        self._by_tag: dict[int, str] = {}
        for name, compiled in self._blueprints.items():
            other = self._by_tag.setdefault(compiled.tag, name)
            if other != name:
                raise LooperError(f"blueprints {other!r} and {name!r} share a decision-id tag; rename one")
        self.redis = redis.Redis.from_url(
            redis_url, password=password, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self._active = ActivePolicies(self.redis, pointer_ttl_s)
        self._online = OnlineModels(self.redis)
        self._writer = BatchWriter(self.redis)
        self._unsent: deque[tuple[str, bytes]] = deque(maxlen=max_unsent)
        self.dropped_events = 0
        self._random_bits = random_bits

    # -- decisions -------------------------------------------------------------------

    def get_decision(
        self, blueprint: str, unit_id: str, features: Mapping[str, object], *, ts: Timestamp = None
    ) -> Decision:
        """Decide for one unit, log the decision with its features, and return it."""
        return self.get_decisions(blueprint, [(unit_id, features)], ts=ts)[0]

    def get_decisions(
        self,
        blueprint: str,
        requests: Sequence[tuple[str, Mapping[str, object]]],
        *,
        ts: Timestamp | Sequence[Timestamp] = None,
    ) -> list[Decision]:
        """Batch form of :meth:`get_decision`: one MGET, and one script call per 1,000 XADDs."""
        compiled = self._compiled(blueprint)
        bp = compiled.blueprint
        check_requests(compiled, requests)
        stamps = self._timestamps(ts, len(requests))
        version, override = self._active.get(bp.name)
        mode = bp.serving.mode  # online/hybrid: the version's compact model scores (sdk/online.py)
        online = self._online.get(bp.name, version) if mode != "lookup" and version is not None else None
        entries: list[bytes | None] = [None] * len(requests)
        if version is not None and requests and (online is None or mode == "hybrid"):
            try:
                prefix = policy_store.entry_key(bp.name, version, "")
                keys = [prefix + str(u) for u, _ in requests]
                entries = self.redis.mget(keys)
            except redis.RedisError as err:
                log.warning("policy lookup for %s failed, serving the default: %s", bp.name, err)
        if online is not None:
            entries = online.entries(requests, entries)
        rands = None
        if self._random_bits is not None:
            rands = [self._random_bits(64) for _ in range(len(requests))]
        plan = self._plan(compiled, version, override or bp.policy.exploration)
        decisions, payloads = plan.decide(requests, stamps, entries, rands)
        self._send(compiled.stream, payloads)
        return decisions

    # -- observations ----------------------------------------------------------------

    def log_observations(
        self,
        decision_id: str,
        observations: Mapping[str, float | int | bool],
        *,
        ts: Timestamp = None,
        blueprint: str | None = None,
    ) -> None:
        """Report what happened after a decision, minutes or days later."""
        self.log_observations_batch([(decision_id, observations, ts)], blueprint=blueprint)

    def log_observations_batch(
        self,
        items: Iterable[tuple[str, Mapping[str, float | int | bool], Timestamp]],
        *,
        blueprint: str | None = None,
    ) -> None:
        """Batch form of :meth:`log_observations`: one script call per stream and 1,000 XADDs."""
        by_stream: dict[str, list[bytes]] = {}
        for decision_id, observations, ts in items:
            name = blueprint or self._blueprint_of(decision_id)
            compiled = self._compiled(name)
            ts_ms = events.to_epoch_ms(ts)
            for obs_name, value in observations.items():
                number = observation_number(obs_name, value)
                event = {
                    "kind": events.OBSERVATION,
                    "event_id": ids.observation_event_id(decision_id, obs_name, ts_ms, number),
                    "decision_id": decision_id,
                    "blueprint": name,
                    "name": obs_name,
                    "value": number,
                    "ts": ts_ms,
                }
                by_stream.setdefault(compiled.stream, []).append(_encode(event).encode())
        for stream, payloads in by_stream.items():
            self._send(stream, payloads)

    def flush(self) -> int:
        """Retry events buffered while Redis was unreachable; returns how many are left."""
        self._send(None, [])
        return len(self._unsent)

    # -- internals -------------------------------------------------------------------

    def _compiled(self, blueprint: str) -> Compiled:
        try:
            return self._blueprints[blueprint]
        except KeyError:
            known = ", ".join(sorted(self._blueprints)) or "none"
            raise LooperError(f"unknown blueprint {blueprint!r} (known: {known})") from None

    def _blueprint_of(self, decision_id: str) -> str:
        try:
            return self._by_tag[ids.tag_of(decision_id)]
        except (KeyError, ValueError):
            raise LooperError(
                f"decision id {decision_id!r} was not issued for any blueprint this client knows; "
                "pass blueprint= explicitly"
            ) from None

    @staticmethod
    def _timestamps(ts: Timestamp | Sequence[Timestamp], n: int) -> list[int]:
        if isinstance(ts, (list, tuple)):
            if len(ts) != n:
                raise LooperError(f"got {len(ts)} timestamps for {n} requests")
            return [events.to_epoch_ms(t) for t in ts]
        return [events.to_epoch_ms(ts)] * n

    @staticmethod
    def _plan(compiled: Compiled, version: str | None, spec: ExplorationSpec) -> ServingPlan:
        """The serving plan for this version and spec, rebuilt only when either changes."""
        plan = compiled.plan
        if plan is None or plan.version != version or plan.spec is not spec:
            plan = compiled.plan = ServingPlan(compiled.blueprint, version, spec, compiled.tag)
        return plan

    @staticmethod
    def _decision_event(bp: Blueprint, d: Decision, features: Mapping[str, object]) -> bytes:
        return encode_decision_event(bp, d, features)

    def _send(self, stream: str | None, payloads: list[bytes]) -> None:
        """XADD the payloads (and any kept from earlier) per stream; a failed stream's events wait for the next call."""
        by_stream: dict[str, list[bytes]]
        if not self._unsent:  # the usual case: one stream, nothing waiting
            if stream is None or not payloads:
                return
            by_stream = {stream: payloads}
        else:
            pending = list(self._unsent)
            self._unsent.clear()
            if stream is not None:
                pending.extend((stream, p) for p in payloads)
            by_stream = {}
            for key, payload in pending:
                by_stream.setdefault(key, []).append(payload)
        kept: list[tuple[str, bytes]] = []
        error: redis.RedisError | None = None
        for key, batch in by_stream.items():
            if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):  # Redis is away: keep the rest
                kept.extend((key, p) for p in batch)
                continue
            try:
                self._writer.xadd(key, _FIELD, batch)
            except redis.RedisError as err:  # a refused write (e.g. OOM, a wrong-type key): other streams still go
                error = err
                kept.extend((key, p) for p in batch)
        if error is not None:
            overflow = max(0, len(kept) - (self._unsent.maxlen or 0))
            self.dropped_events += overflow
            self._unsent.extend(kept)
            log.error("could not send %d event(s), kept %d for retry: %s", len(kept), len(self._unsent), error)
