"""A ``LooperClient``'s decisions and observations with async Redis, for code on an event loop.

:class:`AsyncDecisions` takes the client's own steps (its checks, cached policy state,
decisions and events, circuit breakers and retry buffer) and awaits the two round trips
of every call instead of blocking on them: the MGET of the units' entries and the XADD
of the events (one script call for many). What stays blocking is rare: reading the
policy pointer, the version's exploration, compact model and challenger when their
cache is stale (once per ``pointer_ttl_s``), a challenger's entries, resending events
kept while Redis failed, and adding the counters to Redis (every ``stats_interval_s``).
A Redis that hangs costs one socket timeout per breaker back-off, as in the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

import redis
import redis.asyncio

from looper_common.contracts import events, redis_conn
from looper_common.sdk.client import Decision, LooperClient, Timestamp
from looper_common.sdk.redis_batches import AsyncStreamWriter
from looper_common.sdk.requests import Compiled

__all__ = ["AsyncDecisions"]

_FIELD = events.PAYLOAD_FIELD.encode()
Requests = Sequence[tuple[str, Mapping[str, object]]]


class AsyncDecisions:
    """``client``'s ``get_decisions`` and ``log_observations_batch`` with awaited Redis round trips.

    The asyncio connection is made in the running loop at first use; :meth:`aclose` closes it.
    Not for several event loops at once (one client's state is shared by every call).
    """

    def __init__(self, client: LooperClient) -> None:
        self.client = client
        self._redis: redis.asyncio.Redis | redis.asyncio.RedisCluster | None = None

    def _connect(self) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
        url, password, timeout, cluster = self.client._redis_args
        # The client's socket timeout bounds each whole round trip (asyncio.timeout, below):
        # redis.asyncio's own would wrap every send in asyncio.wait_for, a task per command on 3.11.
        conn = redis_conn.connect_async(url, password=password, cluster=cluster, socket_timeout=None,
                                        socket_connect_timeout=timeout)
        self._timeout = timeout
        self._mget = conn.mget_nonatomic if cluster else conn.mget
        self._writer = AsyncStreamWriter(conn, group=events.INGEST_GROUP)  # as the client's own writer
        self._redis = conn
        return conn

    async def get_decisions(self, blueprint: str, requests: Requests, *,
                            ts: Timestamp | Sequence[Timestamp] = None) -> list[Decision]:
        """``LooperClient.get_decisions``, awaited."""
        compiled, stamps = self.client.check_decisions(blueprint, requests, ts)
        return await self.decide(compiled, requests, stamps)

    async def decide(self, compiled: Compiled, requests: Requests, stamps: Sequence[int]) -> list[Decision]:
        """Decide for requests that passed ``client.check_decisions`` (``compiled``, ``stamps`` its output)."""
        client = self.client
        if self._redis is None:
            self._connect()
        step = client.lookup(compiled, requests)
        entries = None
        if step.keys:
            try:
                async with _within(self._timeout):
                    entries = await self._mget(step.keys)
            except redis_conn.ERRORS as err:
                client.lookup_failed(step, err)
            else:
                client._link.success()
        decisions, payloads = client.decide_from(step, requests, stamps, entries)
        await self.send(compiled.stream, payloads)
        return decisions

    async def log_observations_batch(
        self, items: Iterable[tuple[str, Mapping[str, float | int | bool], Timestamp]], *, blueprint: str | None = None
    ) -> None:
        """``LooperClient.log_observations_batch``, awaited."""
        for stream, payloads in self.client.observation_events(items, blueprint=blueprint).items():
            await self.send(stream, payloads)

    async def send(self, stream: str, payloads: list[bytes]) -> None:
        """XADD new events; when events are kept from earlier, or a breaker holds Redis back, the
        client's own (blocking) send resends a slice of them first or keeps these."""
        client = self.client
        outbox = client._outbox
        if not outbox.direct(payloads):
            client._send(stream, payloads)
            return
        if self._redis is None:
            self._connect()
        try:
            async with _within(self._timeout):
                await self._writer.xadd(stream, _FIELD, payloads)
        except redis_conn.ERRORS as err:
            outbox.not_written(stream, len(payloads), err)
            outbox.keep(stream, payloads)
        else:
            outbox.written(stream, len(payloads))
        client._after_send()

    async def aclose(self) -> None:
        """Close the asyncio connection (the client itself stays open)."""
        if self._redis is not None:
            conn, self._redis = self._redis, None
            await conn.aclose()


@contextlib.asynccontextmanager
async def _within(seconds: float) -> AsyncIterator[None]:
    """Cancel the body after ``seconds`` and raise redis-py's TimeoutError (a link error to the breakers).

    redis.asyncio closes a connection whose command was cancelled, so no reply is left half read.
    """
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise redis.TimeoutError(f"no answer from Redis within {seconds} s") from None
