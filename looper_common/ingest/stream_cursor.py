"""Reading one event stream through ingestion's consumer group: pending entries first, ack after commit.

:class:`StreamCursor` replays this consumer's pending entries (read before a crash,
never acknowledged), then reads new ones up to the stream's last id when the run
started; :meth:`StreamCursor.acknowledge` acks committed ids and trims the stream only
below the oldest entry still unacknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from looper_common.contracts import events, redis_conn
from looper_common.ingest.parsing import Entry
from looper_common.ingest.redis_checks import ensure_group

CONSUMER = "ingest"
ACK_PER_COMMAND = 10_000  # ids per XACK: one command, one reply


def _next_id(stream_id: str) -> str:
    ms, seq = stream_id.split("-")
    return f"{ms}-{int(seq) + 1}"


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, seq = stream_id.split("-")
    return int(ms), int(seq)


def _payload(fields: list | dict | None) -> bytes | None:
    """The event field of a raw entry's ``[field, value, ...]`` (None if absent or empty)."""
    if not fields:
        return None
    if isinstance(fields, dict):  # parsed by redis-py (the cluster client)
        return fields.get(_FIELD) or None
    if fields[0] == _FIELD:
        return fields[1] or None
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == _FIELD:
            return fields[i + 1] or None
    return None


_FIELD = events.PAYLOAD_FIELD.encode()


def _as_parsed(response: object, **options: object) -> object:
    """Leaves a reply as the parser gave it (a response callback that does nothing)."""
    return response


def _raw_reader(client: redis.Redis | redis.RedisCluster) -> redis.Redis | redis.RedisCluster:
    """A client on ``client``'s connection pool whose XREADGROUP replies stay as the parser gives them.

    redis-py's own callback builds a dict per entry, which costs more than Redis takes
    to send it; ingestion only needs each entry's id and payload. A cluster client has
    no single pool (each node has its own): it reads through ``client`` itself, and
    :func:`_payload` takes the parsed entries.
    """
    if redis_conn.is_cluster(client):
        return client
    reader = redis.Redis(connection_pool=client.connection_pool)
    reader.set_response_callback("XREADGROUP", _as_parsed)
    return reader


class StreamCursor:
    """Reads one stream through the group: its pending entries first, then new ones."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client, self.stream = client, stream
        self.reader = _raw_reader(client)
        ensure_group(client, stream)
        info = client.xinfo_stream(stream)
        last = info["last-generated-id"]
        self.end = _id_key(last.decode() if isinstance(last, bytes) else last)
        self.position = "0"  # "0": replay our pending entries; ">": new entries
        self.done = False

    def _xreadgroup(self, count: int) -> list:
        """One XREADGROUP: ``[[id, [field, value, ...]], ...]`` of this stream, or []."""
        reply = self.reader.xreadgroup(events.INGEST_GROUP, CONSUMER, {self.stream: self.position}, count=count)
        if not reply:
            return []
        return next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]  # RESP3: a map

    def read(self, count: int) -> list[Entry]:
        while not self.done:
            messages = self._xreadgroup(count)
            if not messages:
                if self.position == ">":
                    self.done = True
                else:
                    self.position = ">"
                continue
            stream = self.stream
            entries = [(stream, sid.decode(), _payload(fields)) for sid, fields in messages]
            if self.position != ">":
                self.position = entries[-1][1]
            elif _id_key(entries[-1][1]) >= self.end:
                self.done = True  # entries added after the run started wait for the next run
            return entries
        return []

    def acknowledge(self, ids: Sequence[str]) -> None:
        """Ack ``ids`` (already committed) and trim everything before the oldest unacked entry."""
        for lo in range(0, len(ids), ACK_PER_COMMAND):
            self.client.xack(self.stream, events.INGEST_GROUP, *ids[lo:lo + ACK_PER_COMMAND])
        # ids come in stream order (pending ones, then newer); the oldest pending entry bounds the trim anyway
        min_id = _next_id(ids[-1])
        pending = self.client.xpending(self.stream, events.INGEST_GROUP)
        if pending["pending"]:
            oldest = pending["min"].decode() if isinstance(pending["min"], bytes) else pending["min"]
            min_id = min(min_id, oldest, key=_id_key)
        self.client.xtrim(self.stream, minid=min_id, approximate=False)
