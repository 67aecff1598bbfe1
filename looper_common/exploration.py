"""The old import path of ``replay`` and ``replay_matches`` (documented for auditing logged decisions).

New code imports them from ``looper_common.sdk``.
"""

from __future__ import annotations

from looper_common.sdk.exploration import replay, replay_matches

__all__ = ["replay", "replay_matches"]
