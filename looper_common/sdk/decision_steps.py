"""The decision steps of :class:`~looper_common.sdk.client.LooperClient`, apart from its I/O.

``get_decisions`` is :meth:`DecisionSteps.check_decisions`, :meth:`DecisionSteps.lookup`
(the version, exploration, compact model and challenger, and the entry keys still to
read), one MGET, and :meth:`DecisionSteps.decide_from` (decisions and events, no I/O;
:meth:`DecisionSteps.decide_in_parts` for a batch whose events go in parts), then the
events sent. ``looper serve`` takes the same steps with async Redis between them
(``sdk/async_io.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from looper_common.contracts import events, ids, policy_store
from looper_common.contracts.blueprint import ExplorationSpec
from looper_common.contracts.event_rules import EventLimits
from looper_common.contracts.redis_conn import ERRORS as redis_errors
from looper_common.sdk.challenger import decide_with_challenger
from looper_common.sdk.decision_batch import Decision, ServingPlan
from looper_common.sdk.holdback import held_back, withhold
from looper_common.sdk.lookup import Lookup
from looper_common.sdk.online import with_batch_features
from looper_common.sdk.requests import Compiled, LooperError, check_requests

if TYPE_CHECKING:
    from looper_common.sdk.active_policy import ActivePolicies
    from looper_common.sdk.breaker import CircuitBreaker
    from looper_common.sdk.challenger import Challengers
    from looper_common.sdk.online import OnlineModels
    from looper_common.sdk.stats import SdkStats

log = logging.getLogger("looper_common.sdk.client")  # the client's log, as before the split

Timestamp = datetime | int | float | None


def events_of(parts: Iterator[tuple[list[Decision], list[bytes]]], decisions: list[Decision]) -> Iterator[list[bytes]]:
    """The events of each part of :meth:`DecisionSteps.decide_in_parts`, its decisions added to ``decisions``."""
    for made, payloads in parts:
        decisions.extend(made)
        yield payloads


class DecisionSteps:
    """The steps of a batch of decisions; :class:`LooperClient` holds the state they use."""

    _link: CircuitBreaker
    _active: ActivePolicies
    _online: OnlineModels
    _challengers: Challengers
    _stats: SdkStats
    _random_bits: Callable[[int], int] | None
    _eviction_checked: bool

    def _compiled(self, blueprint: str) -> Compiled:
        raise NotImplementedError

    def _check_eviction(self) -> None:
        raise NotImplementedError

    def check_decisions(
        self, blueprint: str, requests: Sequence[tuple[str, Mapping[str, object]]],
        ts: Timestamp | Sequence[Timestamp] = None,
    ) -> tuple[Compiled, list[int]]:
        """The blueprint and the requests' timestamps; a ``LooperError`` names what is wrong."""
        compiled = self._compiled(blueprint)
        check_requests(compiled, requests)
        return compiled, self._timestamps(ts, len(requests), compiled.limits)

    def lookup(self, compiled: Compiled, requests: Sequence[tuple[str, Mapping[str, object]]]) -> Lookup:
        """The served version, its exploration, compact model and challenger (cached, read from
        Redis when stale), and the keys of the units' entries still to read (``Lookup.keys``)."""
        bp = compiled.blueprint
        step = Lookup(compiled, len(requests))
        if not self._link.allow():  # Redis failed recently: do not ask it
            step.version, step.override = self._active.cached(bp.name)
            step.missing = events.CIRCUIT_OPEN
            return step
        try:
            asked = not self._eviction_checked
            if asked:
                self._check_eviction()
            version, step.override = self._active.get(bp.name)
            step.version = version
            asked = asked or self._active.asked_redis
            step.missing = events.NO_POLICY
            mode = bp.serving.mode  # online/hybrid: the version's compact model scores (sdk/online.py)
            if mode != "lookup" and version is not None:
                step.online = self._online.get(bp.name, version)
            if version is not None and requests and (step.online is None or mode == "hybrid"):
                prefix = policy_store.entry_key(bp.name, version, "")
                step.keys = [prefix + str(u) for u, _ in requests]
                step.missing = events.UNKNOWN_UNIT
            if version is not None and bp.promotion.stage != "none":
                step.rollout = self._challengers.get(bp.name)
                step.challenger_entries = step.rollout and self._challengers.entries(bp, step.rollout, requests)
                asked = asked or self._challengers.asked_redis
            if asked:  # a trial that did not reach Redis proves nothing
                self._link.success()
        except redis_errors as err:
            self.lookup_failed(step, err)
        return step

    def lookup_failed(self, step: Lookup, err: Exception) -> None:
        """A read of ``step`` failed: open the circuit; its decisions are the default (``redis_error``)."""
        bp = step.compiled.blueprint
        first = self._link.failure(err)
        (log.warning if first else log.debug)(
            "policy lookup for %s failed, serving the default for %.1f s: %s", bp.name, self._link.backoff_s, err,
        )
        step.version, step.override = self._active.cached(bp.name)
        step.keys, step.missing, step.online, step.rollout = [], events.REDIS_ERROR, None, None

    def decide_from(
        self, step: Lookup, requests: Sequence[tuple[str, Mapping[str, object]]], stamps: Sequence[int],
        entries: list[bytes | None] | None,
    ) -> tuple[list[Decision], list[bytes]]:
        """The decisions and their events (for ``step.compiled.stream``) from the entries read; no I/O."""
        return next(self.decide_in_parts(step, requests, stamps, entries, [step.n]))

    def decide_in_parts(
        self, step: Lookup, requests: Sequence[tuple[str, Mapping[str, object]]], stamps: Sequence[int],
        entries: list[bytes | None] | None, sizes: Sequence[int],
    ) -> Iterator[tuple[list[Decision], list[bytes]]]:
        """:meth:`decide_from` made in consecutive parts of ``sizes`` requests, each yielded when
        made; the parts together are what :meth:`decide_from` returns for the same random bits."""
        compiled, n = step.compiled, step.n
        bp = compiled.blueprint
        if entries is None:
            entries = [None] * n
        if compiled.batch_features:  # hybrid: the published entries supply batch-only features
            requests = with_batch_features(requests, entries)
        if step.online is not None:
            entries = step.online.entries(requests, entries)
        if not step.prepared:
            self.prepare(step, requests, stamps)
        entries = withhold(bp, requests, entries, step.held)  # the holdback's units: the default, reason holdback
        rands, decision_ids = step.rands, step.decision_ids
        plan = self._plan(compiled, step.version, step.override or bp.policy.exploration)
        stats = self._stats
        stats.decisions[bp.name] = stats.decisions.get(bp.name, 0) + n
        defaults = stats.defaults.get(bp.name)
        if defaults is None:
            defaults = stats.defaults[bp.name] = {}
        challenger = step.challenger_entries
        if len(sizes) > 1 and not isinstance(requests, (list, tuple)):
            requests = list(requests)
        lo = 0
        for size in sizes:
            hi, part = lo + size, slice(lo, lo + size)
            # one part: the lists themselves, not copies
            part_requests, part_stamps, part_entries, part_rands, part_ids, part_challenger = (
                (requests, stamps, entries, rands, decision_ids, challenger) if size == n else
                (requests[part], stamps[part], entries[part], rands and rands[part],
                 decision_ids and decision_ids[part], challenger and challenger[part])
            )
            lo = hi
            if step.rollout is None:
                yield plan.decide(part_requests, part_stamps, part_entries, part_rands, step.missing, defaults,
                                  part_ids)
            else:
                yield decide_with_challenger(
                    plan, self._challengers, step.rollout, part_requests, part_stamps, part_entries,
                    part_challenger, part_rands, step.missing, defaults,
                )

    def prepare(self, step: Lookup, requests: Sequence[tuple[str, Mapping[str, object]]],
                stamps: Sequence[int]) -> None:
        """What the decisions need besides the entries, made while they are read: the holdback's
        units, the random bits and (without a challenger) the decision ids."""
        step.held = held_back(step.compiled.blueprint, requests)
        if self._random_bits is not None:
            step.rands = [self._random_bits(64) for _ in range(step.n)]
        if step.rollout is None:
            step.decision_ids = ids.new_decision_ids(step.compiled.tag, stamps, step.rands)
        step.prepared = True

    @staticmethod
    def _timestamps(ts: Timestamp | Sequence[Timestamp], n: int, limits: EventLimits) -> list[int]:
        if isinstance(ts, (list, tuple)):
            if len(ts) != n:
                raise LooperError(f"got {len(ts)} timestamps for {n} requests")
            return [events.to_epoch_ms(t, limits) for t in ts]
        return [events.to_epoch_ms(ts, limits)] * n

    @staticmethod
    def _plan(compiled: Compiled, version: str | None, spec: ExplorationSpec) -> ServingPlan:
        """The serving plan for this version and spec, rebuilt only when either changes."""
        plan = compiled.plan
        if plan is None or plan.version != version or plan.spec is not spec:
            plan = compiled.plan = ServingPlan(compiled.blueprint, version, spec, compiled.tag)
        return plan
