"""Ingestion: drain the Redis event streams into bronze and quarantine, exactly once."""

from __future__ import annotations

from looper_common._exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    streams="ingest_events event_streams IngestStats",
    parsing="parse_entries",
)
