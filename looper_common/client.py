"""The old import path of the SDK client, kept because product code imports it.

New code imports ``from looper_common.sdk import LooperClient``.
"""

from __future__ import annotations

from looper_common.sdk.client import Decision, LooperClient, LooperError

__all__ = ["Decision", "LooperClient", "LooperError"]
