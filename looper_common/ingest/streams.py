"""Drain the event streams into bronze Delta tables with exactly-once effect.

Each batch is read through a consumer group, inserted keyed on ``event_id`` (only
the event_ids not in the table yet), and only then acknowledged and trimmed. A crash
between the commit and the acknowledgement leaves the entries pending; the next run
reads them again and finds them already present, so nothing is written twice.

The entries are parsed in Python as they are read (``ingest.parsing``) into Arrow
tables (``ingest.arrow_batch``); event ids the tables already hold within the horizon
are settled first (``ingest.known_events``); then :meth:`Lake.insert_new` writes in this process with delta-rs: one
insert-only MERGE per table, restricted to the partitions the batch touches. A MERGE
that meets a concurrent commit to those partitions fails and runs again on the new
version, so two ingestions at once insert each event_id once. A reader thread reads
and parses the next batch while the current one is written; no Spark session is used.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import pyarrow as pa
import redis

from looper_common.contracts import event_rules, events
from looper_common.contracts.blueprint import Blueprint
from looper_common.ingest.arrow_batch import TABLES, to_tables
from looper_common.ingest.known_events import settle_known_ids
from looper_common.ingest.parsing import Entry, ParsedBatch, TableRows, parse_entries
from looper_common.ingest.read_ahead import read_ahead
from looper_common.ingest.redis_checks import check_eviction_policy
from looper_common.ingest.stream_cursor import StreamCursor
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE

log = logging.getLogger(__name__)
_EPOCH = date(1970, 1, 1)


@dataclass
class IngestStats:
    events: int = 0
    decisions: int = 0
    observations: int = 0
    quarantined: int = 0
    resent: int = 0  # events whose event_id the tables held already with the same values
    batches: int = 0
    seconds: float = 0.0
    per_stream: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        return (
            f"{self.events} events in {self.batches} batch(es), {self.seconds:.1f} s ({rate:,.0f}/s): "
            f"{self.decisions} new decisions, {self.observations} new observations, "
            f"{self.quarantined} quarantined, {self.resent} already ingested"
        )


def event_streams(client: redis.Redis, blueprint: str | None = None) -> list[str]:
    """The event streams to drain: one blueprint's, or every ``looper:events:*`` stream."""
    if blueprint is not None:
        return [key for key in events.stream_keys(blueprint) if client.exists(key)]
    found = client.scan_iter(match=f"{events.STREAM_PREFIX}*", count=1000, _type="STREAM")
    names = []
    for key in found:
        try:
            names.append(key.decode() if isinstance(key, bytes) else key)
        except UnicodeDecodeError:
            log.error("stream key %r is not UTF-8 and is not drained; rename it to a blueprint's stream", key)
    return sorted(names)


@dataclass
class _Batch:
    """A batch read and parsed: the Arrow rows to write and the stream ids to acknowledge after."""

    parsed: ParsedBatch
    ids: dict[str, list[str]]  # stream -> ids read
    tables: dict[str, pa.Table]  # table name -> Arrow rows (only tables with rows)


def _date_values(days: set[int]) -> list[date] | None:
    try:
        return sorted(_EPOCH + timedelta(days=d) for d in days)
    except OverflowError:  # a date Python cannot hold (year 10000): the MERGE reads every date instead
        return None


def _partitions(rows: TableRows) -> dict[str, list]:
    """Partition values present in ``rows``, for the MERGE's partition predicate."""
    found: dict[str, list] = {}
    for column, values in rows.partitions.items():
        listed = _date_values(values) if column == "date" else sorted(values)
        if listed is not None:
            found[column] = listed
    return found


def _read_batch(
    cursors: Sequence[StreamCursor], batch_size: int, blueprints: Mapping[str, Blueprint],
    limits: event_rules.EventLimits,
) -> _Batch | None:
    """Read up to ``batch_size`` entries across the streams and parse them (None when all are drained).

    The entries come in chunks of at most 50,000 from one stream; the next chunk's
    XREADGROUP runs in a thread while this one is parsed, so Redis builds its reply
    while Python parses (the parse is the bottleneck of ingestion on two cores).
    """
    waiting, remaining = list(cursors), batch_size
    ids: dict[str, list[str]] = {}

    def next_chunk() -> list[Entry] | None:
        nonlocal remaining
        while waiting and remaining > 0:
            chunk = waiting[0].read(min(remaining, 50_000))
            if not chunk:  # the cursor is drained
                waiting.pop(0)
                continue
            remaining -= len(chunk)
            return chunk
        return None

    def entries() -> Iterator[Entry]:
        for chunk in read_ahead(next_chunk):
            ids.setdefault(chunk[0][0], []).extend(sid for _, sid, _ in chunk)
            yield from chunk

    collecting = gc.isenabled()
    gc.disable()  # millions of new containers and no cycles: collections would only rescan them
    try:
        with contextlib.closing(entries()) as stream:  # on an error, stop the chunk thread now
            parsed = parse_entries(stream, blueprints, limits)
        if not parsed.entries:
            return None
        tables = to_tables(parsed)
    finally:
        if collecting:
            gc.enable()
    return _Batch(parsed, ids, tables)


def write_batch(lake: Lake, batch: _Batch, horizon_days: int = 7) -> dict[str, int]:
    """Insert one parsed batch into bronze and quarantine (new event_ids only); returns rows inserted per table.

    Event ids the tables hold within ``horizon_days`` of the batch's dates are settled
    first (``known_events``): the same event is dropped, a different one quarantined.
    Runs after the previous batch's commit, so an id in consecutive batches is seen.
    """
    resent, changed = settle_known_ids(lake, batch.parsed, horizon_days)
    inserted = {"resent": resent}
    if changed:
        batch.tables.update(to_tables(batch.parsed, changed))
    for table, attr in TABLES:
        rows = getattr(batch.parsed, attr)
        if not rows.rows:
            inserted[table.name] = 0
            continue
        inserted[table.name] = lake.insert_new(table, batch.tables[table.name], _partitions(rows))
    return inserted


def ingest_events(
    client: redis.Redis,
    lake: Lake,
    blueprints: Mapping[str, Blueprint],
    *,
    streams: Sequence[str],
    batch_size: int = 200_000,
    limits: event_rules.EventLimits = event_rules.DEFAULT_LIMITS,
    duplicate_horizon_days: int = 7,
    on_committed: Callable[[int], None] | None = None,
) -> IngestStats:
    """Drain ``streams`` into the lake, one committed-then-acknowledged batch at a time.

    Refuses a Redis whose eviction policy can drop stream entries (``redis_checks``).
    ``on_committed(batch_number)`` runs after a batch is in Delta and before it is
    acknowledged (the crash window a test can exercise).
    """
    stats = IngestStats()
    started = time.perf_counter()
    check_eviction_policy(client)
    cursors = {s: StreamCursor(client, s) for s in streams}
    for batch in read_ahead(lambda: _read_batch(list(cursors.values()), batch_size, blueprints, limits)):
        t0 = time.perf_counter()
        inserted = write_batch(lake, batch, duplicate_horizon_days)
        stats.batches += 1
        if on_committed is not None:
            on_committed(stats.batches)
        for stream, ids in batch.ids.items():
            cursors[stream].acknowledge(ids)
            stats.per_stream[stream] = stats.per_stream.get(stream, 0) + len(ids)
        stats.events += batch.parsed.entries
        stats.decisions += inserted[BRONZE_DECISIONS.name]
        stats.observations += inserted[BRONZE_OBSERVATIONS.name]
        stats.quarantined += inserted[QUARANTINE.name]
        stats.resent += inserted["resent"] + batch.parsed.resent
        log.info(
            "batch %d: %d events committed and acknowledged in %.1f s (%s)",
            stats.batches, batch.parsed.entries, time.perf_counter() - t0, inserted,
        )
    stats.seconds = time.perf_counter() - started
    return stats
