"""Ingestion: drain the Redis event streams into bronze and quarantine, exactly once."""

from __future__ import annotations

from looper_common._exports import lazy_exports

_EXPORTS = {
    "ingest_events": "streams",
    "event_streams": "streams",
    "IngestStats": "streams",
    "parse_entries": "parsing",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
