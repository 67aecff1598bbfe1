"""Validation: the training set checked by Great Expectations before any model sees it."""

from __future__ import annotations

from looper_common._exports import lazy_exports

_EXPORTS = {
    "validate_training_set": "training_set",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
