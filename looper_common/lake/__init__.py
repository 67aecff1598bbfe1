"""The lake: Delta tables, their schemas, and the one seam (``engine.Lake``) that chooses who reads and writes them."""

from __future__ import annotations

from looper_common._exports import lazy_exports

_EXPORTS = {
    "Lake": "engine",
    "LakeRead": "engine",
    "blueprint_dates": "engine",
    "TableSpec": "tables",
    "ALL_TABLES": "tables",
    "to_pandas": "frames",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
