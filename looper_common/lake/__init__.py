"""The lake: Delta tables, their schemas, and the one seam (``engine.Lake``) that chooses who reads and writes them."""

from __future__ import annotations

from looper_common._exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    engine="Lake LakeRead blueprint_dates",
    tables="TableSpec ALL_TABLES",
    frames="to_pandas",
)
