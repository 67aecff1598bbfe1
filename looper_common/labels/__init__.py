"""Labels: windows over observations, and the delayed-feedback join that writes silver examples."""

from __future__ import annotations

from looper_common._exports import lazy_exports

_EXPORTS = {
    "join_feedback": "join",
    "build_examples": "windows",
    "maturity_bounds": "days",
    "day_bounds": "days",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
