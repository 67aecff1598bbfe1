"""Events on their way to Redis: sent at once, or kept in a bounded buffer and resent in slices.

The usual call sends its events in one script call and is done. When Redis fails,
the events that could not be sent are kept, oldest first, up to ``max_unsent``; what
does not fit is counted in ``dropped`` (the newest go, as a Kafka producer refuses new
records when its buffer is full) and logged. Later calls send their own events after
at most ``resend_slice`` kept ones, so catching up never costs one call more than a
slice. Two circuit breakers decide whether to try at all: ``link`` (Redis unreachable
or hung; it also holds back reads) and ``writes`` (Redis refusing writes: ``OOM``
under ``noeviction``, ``READONLY`` on a replica; reads still go). Another refusal
(e.g. a stream key of the wrong type) keeps that stream's events and lets the other
streams' go.

:meth:`Outbox.send_parts` sends a call's events in parts as the caller makes them: on
one Redis, in the usual case, each part's script call goes without waiting, and its
reply is read once the next part is made, so Redis writes one part while the caller
makes the next; every reply is read before it returns.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence

import redis

from looper_common.contracts import events, redis_conn
from looper_common.sdk.breaker import CircuitBreaker
from looper_common.sdk.redis_batches import BatchWriter, StartedXadd

__all__ = ["MIN_PART", "Outbox", "is_link_error", "is_write_refusal"]

log = logging.getLogger(__name__)
_FIELD = events.PAYLOAD_FIELD.encode()
MIN_PART = 100  # events; a batch of fewer than two such parts is sent in one


def is_link_error(err: BaseException) -> bool:
    """Redis unreachable, hung or still loading (redis-py's ConnectionError covers loading)."""
    return isinstance(err, redis_conn.LINK_ERRORS)


def is_write_refusal(err: BaseException) -> bool:
    """Redis refusing every write for now: out of memory under ``noeviction``, or a read-only replica."""
    if isinstance(err, (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError)):
        return True
    text = str(err)
    return isinstance(err, redis.ResponseError) and text.startswith(("OOM", "READONLY", "MISCONF"))


class Outbox:
    """Sends events per stream through ``writer``; keeps what fails, within bounds."""

    def __init__(
        self,
        writer: BatchWriter,
        link: CircuitBreaker,
        writes: CircuitBreaker,
        max_unsent: int,
        resend_slice: int,
    ) -> None:
        if max_unsent < 0 or resend_slice < 1:
            raise ValueError("max_unsent must be >= 0 and resend_slice >= 1")
        self._writer = writer
        self._link = link
        self._writes = writes
        self.max_unsent = max_unsent
        self.resend_slice = resend_slice
        self._unsent: deque[tuple[str, bytes]] = deque()
        self.sent: dict[str, int] = {}  # events sent, by stream
        self.dropped: dict[str, int] = {}  # events given up, by stream
        self.failed_sends = 0
        self._overflowing = False

    def __len__(self) -> int:
        return len(self._unsent)

    def send(self, stream: str, payloads: list[bytes]) -> None:
        """Send ``payloads`` to ``stream`` after a slice of the kept ones; keep what fails."""
        if not payloads and not self._unsent:
            return
        if not (self._link.allow() and self._writes.allow()):  # held back: keep them, cost nothing
            self._keep_new(stream, payloads)
        elif not self._unsent:  # the usual case
            if not self._write(stream, payloads, ()):
                self._keep_new(stream, payloads)
        else:
            self._send_slice(self.resend_slice, stream, payloads)

    def part_sizes(self, n: int) -> list[int]:
        """How :meth:`send_parts` would have ``n`` new events made: halving parts of at most
        ``per_call`` down to ``MIN_PART``, so that Redis writes each while the caller makes the
        next, half as long, one; ``[n]`` when they would go in one call anyway."""
        if n < 2 * MIN_PART or not self._writer.can_start:
            return [n]
        sizes, rest = [], n
        while rest >= 2 * MIN_PART:
            sizes.append(min(rest // 2, self._writer.per_call))
            rest -= sizes[-1]
        return [*sizes, rest]

    def send_parts(self, stream: str, parts: Iterable[list[bytes]]) -> None:
        """:meth:`send` of the events of ``parts``, each part sent while the next is made.

        In the usual case (nothing kept, the breakers let Redis be tried, one Redis), a
        part's script call is started (``BatchWriter.start_xadd``), and its reply read after
        the next part is made; a part that fails is kept as :meth:`send` keeps a failed
        call's events, and the call's later parts are kept with it, untried (one failure per
        call, as one script call). Otherwise the parts are joined and given to :meth:`send`.
        Every reply is read before this returns, also when making a part raises.
        """
        if self._unsent or not (self._writer.can_start and self._link.allow() and self._writes.allow()):
            self.send(stream, [p for part in parts for p in part])
            return
        started: StartedXadd | None = None
        failed = False
        try:
            for payloads in parts:
                if started is not None:
                    failed = not self._finish(stream, started)
                    started = None
                if failed:
                    self._keep_new(stream, payloads)
                elif payloads:
                    started = self._writer.start_xadd(stream, _FIELD, payloads)
        finally:
            if started is not None:
                self._finish(stream, started)

    def direct(self, payloads: Sequence[bytes]) -> bool:
        """Whether the caller may write these new events itself now: nothing is kept from earlier
        and the breakers let Redis be tried (perhaps as their trial). It then reports with
        :meth:`written`, or :meth:`not_written` and :meth:`keep`; otherwise it calls :meth:`send`."""
        return bool(payloads) and not self._unsent and self._link.allow() and self._writes.allow()

    def keep(self, stream: str, payloads: Sequence[bytes]) -> None:
        """Keep new events for a retry (as many as fit; the rest are counted as dropped)."""
        self._keep_new(stream, payloads)

    def written(self, stream: str, n: int) -> None:
        """``n`` events were written to ``stream``: close the breakers, count them."""
        self._link.success()
        self._writes.success()
        self.sent[stream] = self.sent.get(stream, 0) + n

    def not_written(self, stream: str, n: int, err: Exception) -> None:
        """Writing ``n`` events to ``stream`` failed with ``err``: tell the breaker it is about."""
        self.failed_sends += 1
        first = True
        if is_link_error(err):
            first = self._link.failure(err)
        elif is_write_refusal(err):
            first = self._writes.failure(err)
        # once per outage, not per retry: the breaker's state says the rest
        (log.warning if first else log.debug)(
            "could not send %d event(s) to %s, keeping them (%d kept): %s", n, stream, len(self._unsent), err,
        )

    def flush(self, deadline: float | None = None) -> int:
        """Send every kept event, slice by slice, whatever the breakers say; stop at the first
        failure or at ``deadline`` (``time.monotonic()``). Returns how many are left."""
        while self._unsent and (deadline is None or time.monotonic() < deadline):
            if not self._send_slice(self.resend_slice, None, []):
                break
        return len(self._unsent)

    def drop_all(self, why: str) -> int:
        """Give up the kept events (counted as dropped); returns how many."""
        n = len(self._unsent)
        for stream, _ in self._unsent:
            self.dropped[stream] = self.dropped.get(stream, 0) + 1
        self._unsent.clear()
        if n:
            log.error("%d event(s) were never sent to Redis and are lost (%s)", n, why)
        return n

    # -- internals -----------------------------------------------------------------------

    def _send_slice(self, n: int, stream: str | None, payloads: list[bytes]) -> bool:
        """Send up to ``n`` kept events, then ``payloads``; True when everything tried was sent.

        After a link failure or a write refusal the remaining streams are not tried; their
        kept events go back to the front, in order. A stream refused for another reason
        (a key of the wrong type) goes to the back, so it cannot hold up the others.
        """
        by_stream: dict[str, list[bytes]] = {}
        for _ in range(min(n, len(self._unsent))):
            key, payload = self._unsent.popleft()
            by_stream.setdefault(key, []).append(payload)
        if stream is not None and payloads:
            by_stream.setdefault(stream, [])
        ok = True
        front: list[tuple[str, bytes]] = []
        back: list[tuple[str, bytes]] = []
        new_left: list[bytes] = []
        for key, kept in by_stream.items():
            new = payloads if key == stream else []
            if not ok and (self._link.is_open or self._writes.is_open):
                front.extend((key, p) for p in kept)
                new_left = new or new_left
                continue
            if not self._write(key, kept, new):
                ok = False
                stuck = self._link.is_open or self._writes.is_open
                (front if stuck else back).extend((key, p) for p in kept)
                new_left = new or new_left
        self._unsent.extendleft(reversed(front))  # older than anything still kept
        self._unsent.extend(back)
        if new_left:
            self._keep_new(stream, new_left)
        return ok

    def _write(self, stream: str, first: Sequence[bytes], then: Sequence[bytes]) -> bool:
        """XADD ``first`` then ``then`` in chunks; False (breakers told) on a failure.

        On a failure nothing of ``first`` + ``then`` counts as sent: a chunk written
        before the failure is sent again later, and ingestion's insert-only write on
        ``event_id`` absorbs the repeat.
        """
        payloads = [*first, *then] if then else first
        per_call = self._writer.per_call
        try:
            if len(payloads) <= per_call:
                self._writer.xadd(stream, _FIELD, payloads)
            else:
                for lo in range(0, len(payloads), per_call):
                    self._writer.xadd(stream, _FIELD, payloads[lo:lo + per_call])
        except redis_conn.ERRORS as err:
            self.not_written(stream, len(payloads), err)
            return False
        self.written(stream, len(payloads))
        return True

    def _finish(self, stream: str, started: StartedXadd) -> bool:
        """Read a started part's reply: count its events as sent, or keep them (breakers told)."""
        payloads = started.payloads
        try:
            self._writer.finish_xadd(started)
        except redis_conn.ERRORS as err:
            self.not_written(stream, len(payloads), err)
            self._keep_new(stream, payloads)
            return False
        self.written(stream, len(payloads))
        return True

    def _keep_new(self, stream: str, payloads: Sequence[bytes]) -> None:
        """Keep new events for a retry, as many as fit; count and log the rest."""
        room = max(0, self.max_unsent - len(self._unsent))
        self._unsent.extend((stream, p) for p in payloads[:room])
        over = len(payloads) - min(room, len(payloads))
        if over:
            self.dropped[stream] = self.dropped.get(stream, 0) + over
            # once per overflow, not per call: stats() and the Redis hash hold the count
            (log.debug if self._overflowing else log.error)(
                "event buffer full (%d kept): dropping new events for %s (%d so far)",
                self.max_unsent, stream, self.dropped[stream],
            )
        self._overflowing = over > 0
