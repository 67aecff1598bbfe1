"""Drain the event streams into bronze Delta tables with exactly-once effect.

Each batch is read through a consumer group, written with insert-only MERGEs keyed
on ``event_id``, and only then acknowledged and trimmed. A crash between the commit
and the acknowledgement leaves the entries pending; the next run reads them again
and the MERGE finds them already present, so nothing is written twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import redis
from pyspark.sql import DataFrame, SparkSession

from looper_common import events
from looper_common.blueprint import Blueprint
from looper_common.event_parsing import (
    RAW_SCHEMA,
    parse_events,
    rejected_events,
    valid_decisions,
    valid_observations,
)
from looper_common.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE, Lake, merge_new_rows

log = logging.getLogger(__name__)
CONSUMER = "ingest"

Entry = tuple[str, str, str | None]  # stream, stream id, payload


@dataclass
class IngestStats:
    events: int = 0
    decisions: int = 0
    observations: int = 0
    quarantined: int = 0
    batches: int = 0
    seconds: float = 0.0
    per_stream: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        return (
            f"{self.events} events in {self.batches} batch(es), {self.seconds:.1f} s ({rate:,.0f}/s): "
            f"{self.decisions} new decisions, {self.observations} new observations, "
            f"{self.quarantined} quarantined"
        )


def event_streams(client: redis.Redis, blueprint: str | None = None) -> list[str]:
    """The event streams to drain: one blueprint's, or every ``looper:events:*`` stream."""
    if blueprint is not None:
        key = events.stream_key(blueprint)
        return [key] if client.exists(key) else []
    found = client.scan_iter(match=f"{events.STREAM_PREFIX}*", count=1000, _type="STREAM")
    return sorted(k.decode() if isinstance(k, bytes) else k for k in found)


def _ensure_group(client: redis.Redis, stream: str) -> None:
    try:
        client.xgroup_create(stream, events.INGEST_GROUP, id="0", mkstream=True)
    except redis.ResponseError as err:
        if "BUSYGROUP" not in str(err):
            raise


def _next_id(stream_id: str) -> str:
    ms, seq = stream_id.split("-")
    return f"{ms}-{int(seq) + 1}"


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, seq = stream_id.split("-")
    return int(ms), int(seq)


class _StreamCursor:
    """Reads one stream through the group: its pending entries first, then new ones."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client, self.stream = client, stream
        _ensure_group(client, stream)
        info = client.xinfo_stream(stream)
        last = info["last-generated-id"]
        self.end = _id_key(last.decode() if isinstance(last, bytes) else last)
        self.position = "0"  # "0": replay our pending entries; ">": new entries
        self.done = False

    def read(self, count: int) -> list[Entry]:
        while not self.done:
            reply = self.client.xreadgroup(
                events.INGEST_GROUP, CONSUMER, {self.stream: self.position}, count=count
            )
            messages = reply[0][1] if reply else []
            if not messages:
                if self.position == ">":
                    self.done = True
                else:
                    self.position = ">"
                continue
            entries = []
            for stream_id, fields in messages:
                sid = stream_id.decode()
                payload = (fields or {}).get(events.PAYLOAD_FIELD.encode())
                entries.append((self.stream, sid, payload.decode("utf-8", "replace") if payload else None))
            if self.position != ">":
                self.position = entries[-1][1]
            elif _id_key(entries[-1][1]) >= self.end:
                self.done = True  # entries added after the run started wait for the next run
            return entries
        return []

    def acknowledge(self, ids: Sequence[str]) -> None:
        """Ack ``ids`` (already committed) and trim everything before the oldest unacked entry."""
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(ids), 10_000):
            pipe.xack(self.stream, events.INGEST_GROUP, *ids[start:start + 10_000])
        pipe.execute()
        min_id = _next_id(max(ids, key=_id_key))
        pending = self.client.xpending(self.stream, events.INGEST_GROUP)
        if pending["pending"]:
            oldest = pending["min"].decode() if isinstance(pending["min"], bytes) else pending["min"]
            min_id = min(min_id, oldest, key=_id_key)
        self.client.xtrim(self.stream, minid=min_id, approximate=False)


def write_batch(spark: SparkSession, lake: Lake, raw: DataFrame, blueprints: Mapping[str, Blueprint]) -> dict[str, int]:
    """Parse one batch and MERGE it into bronze and quarantine; returns rows inserted per table."""
    parsed = parse_events(raw, blueprints).cache()
    try:
        inserted = {}
        for table, rows in (
            (BRONZE_DECISIONS, valid_decisions(parsed)),
            (BRONZE_OBSERVATIONS, valid_observations(parsed)),
            (QUARANTINE, rejected_events(parsed)),
        ):
            present = rows.select(*table.partition_by).distinct().collect()
            partitions = {col: sorted({r[col] for r in present}, key=str) for col in table.partition_by}
            inserted[table.name] = (
                merge_new_rows(spark, lake, table, rows, partitions) if present else 0
            )
        return inserted
    finally:
        parsed.unpersist()


def ingest_events(
    spark: SparkSession,
    client: redis.Redis,
    lake: Lake,
    blueprints: Mapping[str, Blueprint],
    *,
    streams: Sequence[str],
    batch_size: int = 200_000,
    on_committed: Callable[[int], None] | None = None,
) -> IngestStats:
    """Drain ``streams`` into the lake, one committed-then-acknowledged batch at a time.

    ``on_committed(batch_number)`` runs after a batch is in Delta and before it is
    acknowledged (the crash window a test can exercise).
    """
    stats = IngestStats()
    started = time.perf_counter()
    cursors = [_StreamCursor(client, s) for s in streams]
    while True:
        batch: list[Entry] = []
        for cursor in cursors:
            while not cursor.done and len(batch) < batch_size:
                batch.extend(cursor.read(batch_size - len(batch)))
        if not batch:
            break
        t0 = time.perf_counter()
        raw = spark.createDataFrame(pd.DataFrame(batch, columns=RAW_SCHEMA.fieldNames()), RAW_SCHEMA)
        inserted = write_batch(spark, lake, raw, blueprints)
        stats.batches += 1
        if on_committed is not None:
            on_committed(stats.batches)
        by_stream: dict[str, list[str]] = {}
        for stream, sid, _ in batch:
            by_stream.setdefault(stream, []).append(sid)
        for cursor in cursors:
            if cursor.stream in by_stream:
                cursor.acknowledge(by_stream[cursor.stream])
                stats.per_stream[cursor.stream] = stats.per_stream.get(cursor.stream, 0) + len(by_stream[cursor.stream])
        stats.events += len(batch)
        stats.decisions += inserted[BRONZE_DECISIONS.name]
        stats.observations += inserted[BRONZE_OBSERVATIONS.name]
        stats.quarantined += inserted[QUARANTINE.name]
        log.info(
            "batch %d: %d events committed and acknowledged in %.1f s (%s)",
            stats.batches, len(batch), time.perf_counter() - t0, inserted,
        )
    stats.seconds = time.perf_counter() - started
    return stats
