"""Publishing: score every unit with the champion and switch the Redis pointer atomically."""

from __future__ import annotations

from looper_common._exports import lazy_exports

_EXPORTS = {
    "publish_champion": "publish",
    "publish_policy": "redis_policy",
    "rollback": "redis_policy",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
