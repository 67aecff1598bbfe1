"""Publishing: score every unit with the champion and switch the Redis pointer atomically."""

from __future__ import annotations

from looper_common._exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    champion="publish_policies PublishRun",
    publish="publish_champion",
    redis_policy="publish_policy",
    pointer="rollback",
)
