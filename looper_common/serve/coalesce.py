"""Decisions of one blueprint asked at the same time, decided together.

While a round of decisions waits on Redis, the requests that arrive queue up; the
next round takes all of them (up to ``max_batch`` decisions): one MGET of their
entries and one script call for their events, however many requests they came in.
Each request was checked before it joined the queue, so a bad one is refused alone
and cannot fail the others. A request that finds Redis idle is decided at once.
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
    """Checked requests of one blueprint, decided by ``decide_all`` one round at a time.

    A request that finds no round in flight is decided at once in its own task; those
    that arrive meanwhile wait, and a task started when that round ends decides them.
    """

    def __init__(self, compiled: Compiled, decide_all: DecideAll, max_batch: int) -> None:
        self._compiled = compiled
        self._decide_all = decide_all
        self._max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._busy = False  # a round is in flight or about to start
        self._task: asyncio.Task[None] | None = None  # the round of waiting requests (a reference keeps it alive)
        self.rounds = 0  # rounds decided, for the logs
        self.requests = 0

    async def decide(self, requests: Requests, stamps: Sequence[int]) -> list[Decision]:
        """The decisions for ``requests`` (checked by ``LooperClient.check_decisions``), in order."""
        if self._busy:
            future: asyncio.Future[list[Decision]] = asyncio.get_running_loop().create_future()
            self._waiting.append((requests, stamps, future))
            return await future
        self._busy = True
        self.rounds += 1
        self.requests += 1
        try:
            return await self._decide_all(self._compiled, requests, stamps)
        finally:
            self._next_round()

    def _next_round(self) -> None:
        self._busy = bool(self._waiting)
        self._task = asyncio.ensure_future(self._run_waiting()) if self._busy else None

    async def _run_waiting(self) -> None:
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
        else:
            lo = 0
            for reqs, _, future in taken:
                if not future.done():  # its request may have been cancelled meanwhile
                    future.set_result(decisions[lo:lo + len(reqs)])
                lo += len(reqs)
        finally:
            self._next_round()

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
