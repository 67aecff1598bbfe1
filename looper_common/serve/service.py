"""What the endpoints do: check the token's scope, then the SDK's steps.

Every decision and observation goes through the one ``LooperClient`` of the process
(its checks, exploration, events, breakers and retry buffer). How its Redis round
trips are made (``sdk_calls``):

- ``async`` (the default): awaited on redis.asyncio (``sdk.async_io``), and the
  decisions of one blueprint asked at the same time are decided together
  (``coalesce``): one MGET and one event write per round, however many requests.
- ``inline``: the SDK's blocking redis-py calls on the event loop, one request at a time.
- ``thread``: the blocking calls in a worker thread, one at a time (the loop stays free
  while a Redis that hangs times out, for more CPU per request).

``/readyz``'s PING always runs in a thread, so it answers while Redis hangs.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

import anyio
import anyio.to_thread
from starlette.concurrency import run_in_threadpool

from looper_common.contracts import ids
from looper_common.contracts.blueprint import Blueprint
from looper_common.sdk import Decision, LooperClient, LooperError
from looper_common.sdk.async_io import AsyncDecisions
from looper_common.serve.coalesce import DecisionQueue
from looper_common.serve.schemas import MAX_BATCH, DecisionBatchRequest, DecisionRequest, ObservationRequest

T = TypeVar("T")
SdkCalls = Literal["async", "inline", "thread"]


async def _inline(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return func(*args, **kwargs)


def _one_thread_at_a_time() -> Callable[..., Awaitable[Any]]:
    """Calls in a worker thread, one at a time: ``LooperClient`` is not made for concurrent
    use (its retry buffer is read and cleared in one call), so the threads only keep the
    event loop free, they do not overlap SDK calls."""
    limiter = anyio.CapacityLimiter(1)

    async def call(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs), limiter=limiter)

    return call


class Forbidden(Exception):
    """A valid token used for a blueprint outside its scope."""


class BadRequest(LooperError):
    """Input the SDK refused, with the request field it is about."""

    def __init__(self, field: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.field = field


class DecisionService:
    """The SDK client, the blueprints it knows and their decision-id tags."""

    def __init__(
        self, client: LooperClient, blueprints: Mapping[str, Blueprint], sdk_calls: SdkCalls = "async"
    ) -> None:
        self.client = client
        self.sdk_calls = sdk_calls
        self._call: Callable[..., Awaitable[Any]] = _one_thread_at_a_time() if sdk_calls == "thread" else _inline
        self._async = AsyncDecisions(client) if sdk_calls == "async" else None
        self._queues: dict[str, DecisionQueue] = {}
        self.blueprints = dict(blueprints)
        self._by_tag = {ids.blueprint_tag(name): name for name in self.blueprints}
        self._int_features = {
            name: tuple(f.name for f in bp.features if f.type == "int") for name, bp in self.blueprints.items()
        }

    def _as_json_ints(self, blueprint: str, features: dict[str, object]) -> dict[str, object]:
        """``features`` with an integral float (JSON ``3.0``) of an ``int`` feature as that int."""
        for name in self._int_features[blueprint]:
            value = features.get(name)
            if type(value) is float and value.is_integer() and abs(value) < 2**53:
                features[name] = int(value)
        return features

    def _allow(self, blueprint: str, scope: frozenset[str] | None) -> None:
        if scope is not None and blueprint not in scope:
            raise Forbidden(f"this token may not use blueprint {blueprint!r}")
        if blueprint not in self.blueprints:
            known = ", ".join(sorted(self.blueprints)) or "none"
            raise BadRequest(("blueprint",), f"unknown blueprint {blueprint!r} (known: {known})")

    async def decide(self, body: DecisionRequest, scope: frozenset[str] | None) -> Decision:
        self._allow(body.blueprint, scope)
        features = self._as_json_ints(body.blueprint, body.features)
        if self._async is not None:
            [decision] = await self._queued(body.blueprint, [(body.unit_id, features)], body.ts, ("features",))
            return decision
        try:
            return await self._call(self.client.get_decision, body.blueprint, body.unit_id, features, ts=body.ts)
        except LooperError as err:
            raise BadRequest(("features",), str(err)) from None

    async def decide_batch(self, body: DecisionBatchRequest, scope: frozenset[str] | None) -> list[Decision]:
        self._allow(body.blueprint, scope)
        requests = [(item.unit_id, self._as_json_ints(body.blueprint, item.features)) for item in body.requests]
        stamps = [item.ts for item in body.requests]
        if self._async is not None:
            return await self._queued(body.blueprint, requests, stamps, ("requests",)) if requests else []
        try:
            return await self._call(self.client.get_decisions, body.blueprint, requests, ts=stamps)
        except LooperError as err:
            raise BadRequest(("requests",), str(err)) from None

    async def _queued(self, blueprint: str, requests: list[tuple[str, dict[str, object]]],
                      ts: int | None | list[int | None], field: tuple[str, ...]) -> list[Decision]:
        """Check the requests, then decide them in the blueprint's next round (``coalesce``)."""
        try:
            compiled, stamps = self.client.check_decisions(blueprint, requests, ts)
        except LooperError as err:
            raise BadRequest(field, str(err)) from None
        queue = self._queues.get(blueprint)
        if queue is None:
            queue = self._queues[blueprint] = DecisionQueue(compiled, self._async.decide, MAX_BATCH)
        return await queue.decide(requests, stamps)

    async def observe(self, body: ObservationRequest, scope: frozenset[str] | None) -> int:
        blueprint = body.blueprint or self._issuer(body.decision_id)
        self._allow(blueprint, scope)
        items = [(body.decision_id, body.observations, body.ts)]
        try:
            if self._async is not None:
                await self._async.log_observations_batch(items, blueprint=blueprint)
            else:
                await self._call(self.client.log_observations_batch, items, blueprint=blueprint)
        except LooperError as err:
            raise BadRequest(("observations",), str(err)) from None
        return len(body.observations)

    def _issuer(self, decision_id: str) -> str:
        """The blueprint whose tag the decision id carries (the SDK's own rule)."""
        try:
            return self._by_tag[ids.tag_of(decision_id)]
        except (KeyError, ValueError):
            raise BadRequest(
                ("decision_id",),
                f"decision id {decision_id!r} was not issued for any blueprint this server knows; "
                "pass blueprint explicitly",
            ) from None

    async def ready(self) -> bool:
        """Whether Redis answers a PING within the client's socket timeout."""
        try:
            return bool(await run_in_threadpool(self.client.redis.ping))
        except Exception:  # noqa: BLE001 - any failure to reach Redis means not ready
            return False

    async def flush(self) -> int:
        """Send events the SDK kept for retry; returns how many are still unsent."""
        if self._async is not None:
            await self._async.aclose()
        return await self._call(self.client.flush)

    def rounds(self) -> dict[str, list[int]]:
        """Per blueprint, ``[rounds, requests]`` decided together so far (``async`` only)."""
        return {name: [q.rounds, q.requests] for name, q in sorted(self._queues.items())}
