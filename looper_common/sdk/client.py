"""The product-facing SDK: ``get_decision`` and ``log_observations``.

A decision costs one GET (the unit's published entry) and one XADD (the decision
event); the active-version pointer is cached for ``pointer_ttl_s``, with the
version's own exploration spec when it was published with one (else the
blueprint's applies). When the unit is unknown, nothing is published, the entry is
corrupt or Redis fails, the blueprint's default action is served (with the
blueprint's exploration), flagged ``is_default`` with a ``default_reason``
(``events.DEFAULT_REASONS``). After a Redis failure a circuit breaker serves the
default without asking Redis (``circuit_open``) for a back-off period that doubles
per failure up to ``breaker_max_s``; events that could not be sent wait in a bounded
buffer (``outbox.Outbox``) and are resent in slices; ``close()``, and process exit,
flush them with a bounded wait. ``stats()`` counts all of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from looper_common.contracts import events
from looper_common.contracts.blueprint import Blueprint, load_blueprints
from looper_common.contracts.event_rules import DEFAULT_LIMITS, EventLimits
from looper_common.contracts.redis_conn import ERRORS as redis_errors
from looper_common.contracts.redis_conn import batch_get
from looper_common.sdk import at_exit
from looper_common.sdk.active_policy import ActivePolicies
from looper_common.sdk.breaker import CircuitBreaker
from looper_common.sdk.challenger import Challengers
from looper_common.sdk.connection import EvictionPolicyError, check_eviction_policy, connect, mask_url
from looper_common.sdk.decision_batch import Decision
from looper_common.sdk.decision_steps import DecisionSteps, Timestamp, events_of
from looper_common.sdk.observation_steps import ObservationSteps
from looper_common.sdk.online import OnlineModels
from looper_common.sdk.outbox import Outbox, is_link_error
from looper_common.sdk.redis_batches import BatchWriter
from looper_common.sdk.requests import Compiled, LooperError, compile_blueprint
from looper_common.sdk.started_call import start_mget
from looper_common.sdk.stats import SdkStats

__all__ = ["Decision", "LooperClient", "LooperError"]

log = logging.getLogger(__name__)


class LooperClient(DecisionSteps, ObservationSteps):
    """Decisions and observations for every blueprint known to this process.

    Args:
        redis_url: Redis holding published policies and event streams; defaults to the
            environment's settings (``conf/<LOOPER_ENV>.yaml``).
        blueprints: a folder of blueprint YAML files or already-loaded blueprints.
        password: the Redis password; default ``$LOOPER_REDIS_PASSWORD`` (a password in
            the URL wins).
        cluster: ``redis_url`` is a node of a Redis Cluster; default the environment's
            ``redis.cluster`` when the settings are read, else False.
        pointer_ttl_s: how long the active policy version (and its exploration) is cached.
        socket_timeout: seconds a Redis call may take (connect, read) before it fails.
        max_unsent: events kept for retry while Redis is unreachable; more are dropped
            (counted in ``stats()``).
        resend_slice: kept events resent per call at most, besides the call's own.
        breaker_base_s, breaker_max_s: back-off after a Redis failure, doubled per
            further failure up to the cap; during it Redis is not asked.
        close_timeout_s: how long ``close()`` (and process exit) try to send what is kept.
        stats_interval_s: how often the counters are added to Redis (``events.sdk_stats_key``).
        random_bits: source of 64-bit randomness for decision ids (and so for
            exploration); pass ``random.Random(seed).getrandbits`` to make a simulation
            reproducible. Default: the OS.
        limits: what an event may be (size, time window), as ingestion checks it; default
            the environment's ``ingest:`` settings when they are read (``redis_url`` or
            ``blueprints`` not given), else ``event_rules.DEFAULT_LIMITS``. A client given
            both should be given the limits ingestion runs with (``settings.ingest.limits``),
            so that what it accepts is never quarantined.
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
        resend_slice: int = 1_000,
        breaker_base_s: float = 1.0,
        breaker_max_s: float = 30.0,
        close_timeout_s: float = 5.0,
        stats_interval_s: float = 10.0,
        random_bits: Callable[[int], int] | None = None,
        cluster: bool | None = None,
        limits: EventLimits | None = None,
    ) -> None:
        if redis_url is None or blueprints is None:
            from looper_common.contracts.config import load_settings

            settings = load_settings()
            redis_url = redis_url or settings.redis.url
            cluster = settings.redis.cluster if cluster is None else cluster
            password = password or settings.redis.password
            blueprints = blueprints if blueprints is not None else settings.blueprints_dir
            limits = limits or settings.ingest.limits
        if not isinstance(blueprints, Mapping):
            blueprints = load_blueprints(blueprints)
        limits = limits or DEFAULT_LIMITS
        self._blueprints = {name: compile_blueprint(bp, limits) for name, bp in blueprints.items()}
        self._invalid: dict[str, str] = getattr(blueprints, "invalid", {})  # bad files: load_blueprints
        self._by_tag: dict[int, str] = {}
        for name, compiled in self._blueprints.items():
            other = self._by_tag.setdefault(compiled.tag, name)
            if other != name:
                raise LooperError(f"blueprints {other!r} and {name!r} share a decision-id tag; rename one")
        self.redis = connect(redis_url, password, socket_timeout, bool(cluster))
        self._redis_args = (redis_url, password, socket_timeout, bool(cluster))  # for sdk.async_io
        self._mget = batch_get(self.redis)  # one MGET, or one per slot on a cluster
        self._where = f"Redis at {mask_url(redis_url)}"
        self._link = CircuitBreaker(breaker_base_s, breaker_max_s)  # Redis unreachable or hung
        self._writes = CircuitBreaker(breaker_base_s, breaker_max_s)  # Redis refusing writes
        self._active = ActivePolicies(self.redis, pointer_ttl_s)
        writer = BatchWriter(self.redis, group=events.INGEST_GROUP)  # a stream it creates has ingestion's group
        self._outbox = Outbox(writer, self._link, self._writes, max_unsent, resend_slice)
        self._stats = SdkStats(stats_interval_s)
        self._close_timeout_s = close_timeout_s
        self._online = OnlineModels(self.redis)
        self._challengers = Challengers(self.redis, pointer_ttl_s)  # shadow and canary (sdk/challenger.py)
        self._random_bits = random_bits
        self._eviction_checked = False
        try:
            self._check_eviction()
        except redis_errors as err:  # Redis is away: checked at the first call that reaches it
            self._link.failure(err)
            log.warning("%s is not reachable (%s): serving defaults until it is", self._where, err)
        at_exit.track(self)

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
        """Batch form of :meth:`get_decision`: one MGET, and one script call per part of at most 1,000 XADDs.

        The steps, which ``looper serve`` also takes with async Redis between them:
        :meth:`check_decisions`, :meth:`lookup` (the keys to read), one MGET,
        :meth:`decide_from` (decisions and events, no I/O), then the events sent. A batch of
        200 or more is decided in parts (``Outbox.part_sizes``), each part's events written
        by Redis while the next is decided; all are written, or kept, when it returns.
        """
        compiled, stamps = self.check_decisions(blueprint, requests, ts)
        step = self.lookup(compiled, requests)
        entries = None
        if step.keys:
            read = start_mget(self.redis, self._mget, step.keys)  # one Redis: Redis reads while the client
            try:  # makes what needs no entry
                self.prepare(step, requests, stamps)
            finally:
                try:
                    entries = read()
                except redis_errors as err:
                    self.lookup_failed(step, err)
                else:
                    self._link.success()
        sizes = self._outbox.part_sizes(step.n)
        if len(sizes) == 1:
            decisions, payloads = self.decide_from(step, requests, stamps, entries)
            self._outbox.send(compiled.stream, payloads)
        else:
            decisions = []
            parts = self.decide_in_parts(step, requests, stamps, entries, sizes)
            self._outbox.send_parts(compiled.stream, events_of(parts, decisions))
        self._after_send()
        return decisions

    def flush(self) -> int:
        """Send the events kept while Redis failed, slice by slice, until one fails; returns how many are left."""
        return self._outbox.flush()

    def close(self, timeout_s: float | None = None) -> int:
        """Send what is kept, retrying for at most ``timeout_s`` (default ``close_timeout_s``, plus
        one socket timeout at worst), then give up the rest (counted as dropped, logged) and
        disconnect. Returns how many events were given up. Called at process exit for clients not closed; a client used
        after ``close()`` reconnects, and is closed again at exit if it then keeps events."""
        at_exit.forget(self)
        deadline = time.monotonic() + (self._close_timeout_s if timeout_s is None else timeout_s)
        while self._outbox.flush(deadline) and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        lost = self._outbox.drop_all(f"still unsent when the client closed, {self._where}")
        if not (self._link.is_open or self._writes.is_open):
            self._stats.report(self.redis, self._outbox.sent, self._outbox.dropped)
        self.redis.close()
        return lost

    def stats(self) -> dict[str, object]:
        """The client's counters: events sent, kept, dropped; circuit states; per-blueprint counts.

        ``by_blueprint`` holds the fields this process adds to the Redis hash
        ``events.sdk_stats_key(blueprint)`` (decisions, ``default_<reason>``, events sent
        and dropped).
        """
        out = self._outbox
        return {
            "events_sent": sum(out.sent.values()),
            "events_buffered": len(out),
            "events_dropped": sum(out.dropped.values()),
            "failed_sends": out.failed_sends,
            "circuit": self._link.state(),
            "writes_circuit": self._writes.state(),
            "circuit_opened": self._link.opened,
            "writes_circuit_opened": self._writes.opened,
            "last_error": self._link.last_error or self._writes.last_error,
            "by_blueprint": self._stats.counters(out.sent, out.dropped),
        }

    @property
    def dropped_events(self) -> int:
        """Events given up so far (buffer full, or unsent at close)."""
        return sum(self._outbox.dropped.values())

    # -- internals -------------------------------------------------------------------

    def _compiled(self, blueprint: str) -> Compiled:
        try:
            return self._blueprints[blueprint]
        except KeyError:
            if blueprint in self._invalid:
                raise LooperError(f"blueprint {blueprint!r} is invalid: {self._invalid[blueprint]}") from None
            known = ", ".join(sorted(self._blueprints)) or "none"
            raise LooperError(f"unknown blueprint {blueprint!r} (known: {known})") from None

    def _send(self, stream: str, payloads: list[bytes]) -> None:
        """XADD the payloads (after a slice of any kept from earlier); what fails is kept."""
        self._outbox.send(stream, payloads)
        self._after_send()

    def _after_send(self) -> None:
        """Hold the client until exit while it keeps events; add the counters to Redis when due."""
        at_exit.holding(self, len(self._outbox) > 0)
        if self._stats.due() and not (self._link.is_open or self._writes.is_open):
            err = self._stats.report(self.redis, self._outbox.sent, self._outbox.dropped)
            if err is not None and is_link_error(err):
                self._link.failure(err)

    def _check_eviction(self) -> None:
        """Refuse a Redis that may evict streams or pointers; raises RedisError when it cannot be asked."""
        try:
            check_eviction_policy(self.redis, self._where)
        except EvictionPolicyError as err:
            raise LooperError(str(err)) from None
        self._eviction_checked = True
