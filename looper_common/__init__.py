"""Looper: an end-to-end ML platform for product decisions.

Product code uses :class:`looper_common.sdk.client.LooperClient` (``get_decision`` and
``log_observations``); the rest of the package is the platform behind it.
"""

from __future__ import annotations

__version__ = "0.1.0"
