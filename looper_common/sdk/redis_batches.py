"""Many stream entries or keys written in one Redis command, through registered Lua scripts.

redis-py spends microseconds of Python per pipelined command and per reply; the hot
writes (the SDK's event batches, publishing millions of policy entries) instead call
one script per chunk of ``per_call`` items: one command packed by redis-py, one reply.
Every key a script writes is passed in ``KEYS`` (one stream per call, or the keys of
the chunk), as Redis Cluster requires. A chunk stays short (about a millisecond per
few hundred items on the server), so other clients wait at most that long.

An error Redis returns (a wrong-type key, ``OOM`` under ``noeviction``, ``READONLY`` on
a replica) aborts the script and is raised as redis-py raises it. Redis checks those
at the script's first write, so a refused chunk writes nothing; chunks before it stay
written (a retry of the whole batch duplicates them, which ingestion's insert-only
write on ``event_id`` absorbs, and a rewrite of the same keys is harmless).

On a Redis Cluster a script may only touch keys of one slot, and the keys of a chunk
of ``SET`` (policy entries, no hash tag) are spread over all slots: there a chunk is
one non-transactional cluster pipeline of ``SET ... EX`` (redis-py sends one batch per
primary), and a refused command leaves the others of its chunk written.

On one Redis, :meth:`BatchWriter.start_xadd` sends a chunk's script call without
waiting for the reply (``sdk.started_call``), which :meth:`BatchWriter.finish_xadd`
reads: the caller works while Redis writes.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
import redis.asyncio

from looper_common.contracts.redis_conn import LINK_ERRORS, is_cluster
from looper_common.sdk.started_call import StartedCall

__all__ = ["AsyncStreamWriter", "BatchWriter", "PER_CALL", "StartedXadd"]

PER_CALL = 1_000

# KEYS[1]: the stream; ARGV[1]: a consumer group to create with the stream ('' for none); ARGV[2]: the
# field; ARGV[3..]: one entry's value each. Returns how many were added.
_XADD_MANY = """
local call, stream, group, field = redis.call, KEYS[1], ARGV[1], ARGV[2]
if group ~= '' and call('EXISTS', stream) == 0 then
  call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
end
for i = 3, #ARGV do
  call('XADD', stream, '*', field, ARGV[i])
end
return #ARGV - 2
"""

# KEYS: the keys; ARGV[1]: TTL in seconds; ARGV[i + 1]: the value of KEYS[i]. Returns how many were set.
_SET_EX_MANY = """
local call, ttl = redis.call, ARGV[1]
for i = 1, #KEYS do
  call('SET', KEYS[i], ARGV[i + 1], 'EX', ttl)
end
return #KEYS
"""


class StartedXadd:
    """A script call of :meth:`BatchWriter.start_xadd` whose reply is still to be read."""

    __slots__ = ("call", "stream", "field", "payloads")

    def __init__(self, call: StartedCall, stream: str | bytes, field: bytes, payloads: Sequence[bytes]) -> None:
        self.call = call
        self.stream = stream
        self.field = field
        self.payloads = payloads


def _init_stream_writer(writer, client, per_call: int, group: str | None) -> None:
    """The state :class:`BatchWriter` and :class:`AsyncStreamWriter` share: chunk size, group, the XADD script."""
    if per_call < 1:
        raise ValueError("per_call must be positive")
    writer.per_call = per_call
    writer._client = client
    writer._group = group or ""
    writer._known = set()  # streams written by a script, which made the group if needed
    writer._xadd = client.register_script(_XADD_MANY)


class BatchWriter:
    """``XADD`` and ``SET ... EX`` of many items per round trip on ``client``.

    With ``group``, a stream this writer creates is created with that consumer group
    (``XGROUP CREATE <stream> <group> 0 MKSTREAM``, in the same script as its first
    entries): ingestion's group then exists even if Redis is full before ingestion first
    runs, and it can drain the stream at ``maxmemory``.
    """

    def __init__(self, client: redis.Redis, per_call: int = PER_CALL, group: str | None = None) -> None:
        _init_stream_writer(self, client, per_call, group)
        self._cluster = is_cluster(client)
        self._set_ex = client.register_script(_SET_EX_MANY)

    def xadd(self, stream: str | bytes, field: bytes, payloads: Sequence[bytes]) -> int:
        """``XADD stream * field payload`` of each payload, in order; returns how many calls it took.

        A single payload goes as a plain ``XADD`` once a script has written to the stream
        (or without a group): a script call costs Redis more than the one command it would
        replace.
        """
        if len(payloads) == 1 and (not self._group or stream in self._known):
            self._client.xadd(stream, {field: payloads[0]})
            return 1
        calls = 0
        for lo in range(0, len(payloads), self.per_call):
            chunk = payloads[lo:lo + self.per_call]
            _check(self._xadd(keys=[stream], args=[self._group, field, *chunk]), len(chunk), "XADD")
            calls += 1
        self._known.add(stream)
        return calls

    @property
    def can_start(self) -> bool:
        """Whether :meth:`start_xadd` is available: on one Redis, not on a cluster (whose client routes by slot)."""
        return not self._cluster

    def start_xadd(self, stream: str | bytes, field: bytes, payloads: Sequence[bytes]) -> StartedXadd:
        """Send the script call of :meth:`xadd` for at most ``per_call`` payloads without reading its
        reply (``sdk.started_call``); :meth:`finish_xadd` must follow."""
        if len(payloads) > self.per_call:
            raise ValueError(f"{len(payloads)} payloads in one started call (at most {self.per_call})")
        call = StartedCall(self._client, "EVALSHA", self._xadd.sha, 1, stream, self._group, field, *payloads)
        return StartedXadd(call, stream, field, payloads)

    def finish_xadd(self, started: StartedXadd) -> None:
        """Read the reply of :meth:`start_xadd`, raising what :meth:`xadd` would raise.

        A script Redis no longer holds (``NOSCRIPT``: restarted, ``SCRIPT FLUSH``) and a
        connection that failed go again through :meth:`xadd`, which loads the script and
        takes redis-py's retries, as a blocking call's first failure would.
        """
        try:
            written = started.call.reply()
        except (redis.exceptions.NoScriptError, *LINK_ERRORS):
            self.xadd(started.stream, started.field, started.payloads)
            return
        _check(written, len(started.payloads), "XADD")
        self._known.add(started.stream)

    def set_ex(self, keys: Sequence[bytes | str], values: Sequence[bytes], ttl_seconds: int) -> int:
        """``SET key value EX ttl_seconds`` of each pair; returns how many calls it took."""
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        calls = 0
        for lo in range(0, len(keys), self.per_call):
            hi = lo + self.per_call
            if self._cluster:
                self._pipelined_set_ex(keys[lo:hi], values[lo:hi], ttl_seconds)
                calls += 1
                continue
            _check(self._set_ex(keys=keys[lo:hi], args=[ttl_seconds, *values[lo:hi]]), len(keys[lo:hi]), "SET")
            calls += 1
        return calls

    def _pipelined_set_ex(self, keys: Sequence[bytes | str], values: Sequence[bytes], ttl_seconds: int) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key, value in zip(keys, values, strict=True):
            pipe.set(key, value, ex=ttl_seconds)
        replies = pipe.execute(raise_on_error=True)
        _check(sum(1 for r in replies if r is True), len(keys), "SET")


class AsyncStreamWriter:
    """:meth:`BatchWriter.xadd` with a redis.asyncio client: the same commands (and ``group``), awaited."""

    def __init__(self, client: redis.asyncio.Redis | redis.asyncio.RedisCluster, per_call: int = PER_CALL,
                 group: str | None = None) -> None:
        _init_stream_writer(self, client, per_call, group)

    async def xadd(self, stream: str | bytes, field: bytes, payloads: Sequence[bytes]) -> int:
        """``XADD stream * field payload`` of each payload, in order; returns how many calls it took."""
        if len(payloads) == 1 and (not self._group or stream in self._known):
            await self._client.xadd(stream, {field: payloads[0]})
            return 1
        calls = 0
        for lo in range(0, len(payloads), self.per_call):
            chunk = payloads[lo:lo + self.per_call]
            _check(await self._xadd(keys=[stream], args=[self._group, field, *chunk]), len(chunk), "XADD")
            calls += 1
        self._known.add(stream)
        return calls


def _check(written: object, expected: int, command: str) -> None:
    """A script that returned without error wrote every item; anything else is a broken script."""
    if written != expected:
        raise redis.ResponseError(f"{command} script wrote {written!r} of {expected} items")
