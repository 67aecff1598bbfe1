"""Decisions of one blueprint asked at the same time, decided together.

While a round of decisions waits on Redis, the requests that arrive queue up; the
next round takes all of them (up to ``max_batch`` decisions): one MGET of their
entries and one script call for their events, however many requests they came in.
Each request was checked before it joined the queue, so a bad one is refused alone
and cannot fail the others. At low rates a round holds one request and this adds
one event-loop step to its latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from looper_common.sdk import Decision
from looper_common.sdk.requests import Compiled

Requests = Sequence[tuple[str, Mapping[str, object]]]
DecideAll = Callable[[Compiled, Requests, Sequence[int]], Awaitable[list[Decision]]]
_Waiting = tuple[Requests, Sequence[int], "asyncio.Future[list[Decision]]"]


class DecisionQueue:
    """Checked requests of one blueprint, decided in rounds by ``decide_all`` (one task at a time)."""

    def __init__(self, compiled: Compiled, decide_all: DecideAll, max_batch: int) -> None:
        self._compiled = compiled
        self._decide_all = decide_all
        self._max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._round: asyncio.Task[None] | None = None
        self.rounds = 0  # rounds decided, for the logs
        self.requests = 0

    async def decide(self, requests: Requests, stamps: Sequence[int]) -> list[Decision]:
        """The decisions for ``requests`` (checked by ``LooperClient.check_decisions``), in order."""
        future: asyncio.Future[list[Decision]] = asyncio.get_running_loop().create_future()
        self._waiting.append((requests, stamps, future))
        if self._round is None:
            self._round = asyncio.ensure_future(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                taken = self._take()
                requests = [r for reqs, _, _ in taken for r in reqs]
                stamps = [s for _, sts, _ in taken for s in sts]
                self.rounds += 1
                self.requests += len(taken)
                try:
                    decisions = await self._decide_all(self._compiled, requests, stamps)
                except Exception as err:  # noqa: BLE001 - each waiting request gets the error (a 500)
                    for _, _, future in taken:
                        if not future.done():
                            future.set_exception(err)
                    continue
                lo = 0
                for reqs, _, future in taken:
                    if not future.done():  # its request may have been cancelled meanwhile
                        future.set_result(decisions[lo:lo + len(reqs)])
                    lo += len(reqs)
        finally:
            self._round = None

    def _take(self) -> list[_Waiting]:
        """The waiting requests of the next round: the first always, then up to ``max_batch`` decisions."""
        taken, n = [], 0
        for i, item in enumerate(self._waiting):
            if taken and n + len(item[0]) > self._max_batch:
                del self._waiting[:i]
                return taken
            taken.append(item)
            n += len(item[0])
        self._waiting.clear()
        return taken
