"""The SDK's counters, kept in the process and added to a Redis hash per blueprint.

Per blueprint: decisions, default decisions by reason, events sent and events
dropped (given up: the buffer was full, or still unsent at close). Every process adds
its increments (``HINCRBY``) to ``events.sdk_stats_key(blueprint)`` at most every
``interval_s``, after a successful send and at close, so the hash holds the totals of
every client, readable by the monitor; a report that fails is retried with the next
one, nothing is counted twice.
"""

from __future__ import annotations

import logging
import time

import redis

from looper_common.contracts import events, redis_conn

__all__ = ["SdkStats"]

log = logging.getLogger(__name__)


class SdkStats:
    """Counters by blueprint, and what of them has reached the Redis hash."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.decisions: dict[str, int] = {}
        self.defaults: dict[str, dict[str, int]] = {}  # blueprint -> reason -> count
        self._reported: dict[tuple[str, str], int] = {}
        self._next_report = time.monotonic() + interval_s

    def due(self) -> bool:
        return time.monotonic() >= self._next_report

    def counters(self, sent: dict[str, int], dropped: dict[str, int]) -> dict[str, dict[str, int]]:
        """``{blueprint: {field: count}}``, the fields of the Redis hash."""
        out: dict[str, dict[str, int]] = {}
        for bp, n in self.decisions.items():
            out.setdefault(bp, {})["decisions"] = n
        for bp, reasons in self.defaults.items():
            for reason, n in reasons.items():
                out.setdefault(bp, {})[f"default_{reason}"] = n
        for stream, n in sent.items():
            out.setdefault(events.blueprint_of_stream(stream), {})["events_sent"] = n
        for stream, n in dropped.items():
            out.setdefault(events.blueprint_of_stream(stream), {})["events_dropped"] = n
        return out

    def report(self, client: redis.Redis, sent: dict[str, int], dropped: dict[str, int]) -> redis.RedisError | None:
        """Add what changed since the last report to each blueprint's hash; the error if Redis failed."""
        self._next_report = time.monotonic() + self.interval_s
        deltas: list[tuple[str, str, int]] = []
        for bp, fields in self.counters(sent, dropped).items():
            for name, n in fields.items():
                delta = n - self._reported.get((bp, name), 0)
                if delta:
                    deltas.append((bp, name, delta))
        if not deltas:
            return None
        by_bp: dict[str, list[tuple[str, int]]] = {}
        for bp, name, delta in deltas:
            by_bp.setdefault(bp, []).append((name, delta))
        for bp, fields in by_bp.items():  # one hash per blueprint, one slot on a cluster
            try:
                pipe = client.pipeline(transaction=True)  # all or nothing: never counted twice
                for name, delta in fields:
                    pipe.hincrby(events.sdk_stats_key(bp), name, delta)
                pipe.hset(events.sdk_stats_key(bp), "updated_ms", events.to_epoch_ms(None))
                pipe.execute()
            except redis_conn.ERRORS as err:
                log.warning("could not write the SDK's counters to Redis (kept for the next report): %s", err)
                return err
            for name, delta in fields:
                self._reported[(bp, name)] = self._reported.get((bp, name), 0) + delta
        return None
