"""Validation: the training set checked by Great Expectations before any model sees it."""

from __future__ import annotations

from looper_common._exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, training_set="validate_training_set")
