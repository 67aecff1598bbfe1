"""Ingestion's watermark: per blueprint, the arrival time through which its stream is committed.

An entry's arrival time is the millisecond part of its stream id (Redis stamps it when
the entry is added, never going back). After ingestion has committed and acknowledged
what it read, the first entry not yet committed is the oldest one still pending in the
consumer group or the first one after the group's last delivered id; every entry
before it is in Delta, so the watermark is just before its arrival. With no such entry
(the stream is empty or does not exist), everything that arrived until now is
committed: the watermark is Redis' clock (``TIME``), read before the stream is looked
at, so an entry added meanwhile has a later id.

A watermark once true stays true (committed entries stay committed), so the table
keeps the highest one recorded: two ingestions at once can only hold it back, never
move it past an uncommitted entry. ``monitoring/ingest_watermark`` holds one row per
blueprint; the DAG's sensor reads it before ``join_feedback`` runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import redis

from looper_common.contracts import events
from looper_common.contracts.blueprint import Blueprint
from looper_common.labels.days import day_bounds
from looper_common.lake.engine import Lake
from looper_common.lake.tables import INGEST_WATERMARK

log = logging.getLogger(__name__)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(stream_id: str) -> int:
    return int(stream_id.split("-")[0])


def _from_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _first_uncommitted_ms(client: redis.Redis, stream: str) -> int | None:
    """Arrival (ms) of the stream's oldest entry not committed by ingestion; None if there is none."""
    if not client.exists(stream):
        return None
    groups = {_text(g["name"]): g for g in client.xinfo_groups(stream)}
    group = groups.get(events.INGEST_GROUP)
    if group is None:  # never ingested: its first entry is the oldest uncommitted one
        first = client.xrange(stream, "-", "+", count=1)
        return _ms(_text(first[0][0])) if first else None
    found = []
    pending = client.xpending(stream, events.INGEST_GROUP)
    if pending["pending"]:
        found.append(_ms(_text(pending["min"])))
    undelivered = client.xrange(stream, f"({_text(group['last-delivered-id'])}", "+", count=1)
    if undelivered:
        found.append(_ms(_text(undelivered[0][0])))
    return min(found) if found else None


def stream_watermark(client: redis.Redis, blueprint: str) -> datetime:
    """The arrival time through which ``blueprint``'s stream is committed to the lake."""
    seconds, micros = client.time()  # first: an entry added after this has a later id
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    found = [ms for key in events.stream_keys(blueprint) if (ms := _first_uncommitted_ms(client, key)) is not None]
    return _from_ms(min(found) - 1 if found else now_ms)


def read_watermarks(lake: Lake) -> dict[str, datetime]:
    """Every blueprint's recorded watermark (none for a blueprint never ingested)."""
    rows = lake.read(INGEST_WATERMARK, columns=["blueprint", "watermark"]).table.to_pylist()
    return {r["blueprint"]: r["watermark"] for r in rows}


def record_watermarks(client: redis.Redis, lake: Lake, blueprints: Iterable[str]) -> dict[str, datetime]:
    """Compute each blueprint's watermark after an ingestion and keep the higher of it and the stored one."""
    stored = read_watermarks(lake)
    updated_at = datetime.now(UTC)
    recorded = {}
    for name in blueprints:
        mark = stream_watermark(client, name)
        previous = stored.get(name)
        if previous is not None and previous >= mark:
            recorded[name] = previous
            continue
        row = pa.Table.from_pylist(
            [{"blueprint": name, "watermark": mark, "updated_at": updated_at}], schema=INGEST_WATERMARK.schema
        )
        lake.replace_partition(INGEST_WATERMARK, row, {"blueprint": name})
        log.info("%s: watermark %s (arrivals through it are in the lake)", name, mark.isoformat())
        recorded[name] = mark
    return recorded


def join_deadline(blueprint: Blueprint, run_date: date) -> datetime:
    """The watermark ``run_date``'s join waits for: the day's end plus the blueprint's allowed lateness."""
    return day_bounds(run_date)[1] + timedelta(seconds=blueprint.allowed_lateness_seconds)


def watermark_passed(lake: Lake, blueprint: str, deadline: datetime) -> bool:
    """Whether ingestion's recorded watermark for ``blueprint`` is at or past ``deadline``."""
    mark = read_watermarks(lake).get(blueprint)
    log.info("%s: watermark %s, waiting for %s", blueprint, mark.isoformat() if mark else "none yet",
             deadline.isoformat())
    return mark is not None and mark >= deadline


def join_is_due(lake: Lake, blueprint: Blueprint, run_date: date) -> bool:
    """Whether ingestion's watermark for ``blueprint`` has passed ``run_date``'s deadline."""
    return watermark_passed(lake, blueprint.name, join_deadline(blueprint, run_date))
