"""The lake: Delta tables, their schemas, and the one seam that chooses the engine that reads and writes them."""

from __future__ import annotations

from looper_common._exports import lazy_exports

_EXPORTS = {
    "Lake": "tables",
    "TableSpec": "tables",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
