"""The SDK's cached view of each blueprint's active policy version and its exploration.

A published version may carry its own exploration spec (the meta hash's
``exploration`` field, e.g. tuned by a policy tuning job); decisions served from that
version use it instead of the blueprint's ``policy.exploration``. Both are read
together and cached for ``ttl_s``: one pipelined GET of the pointer and HGET of the
field of the version seen last time, so a refresh is one round trip unless the
pointer moved (then one more HGET). No Lua: the pointer and the meta hash are
different keys, which may live on different Redis Cluster nodes.
"""

from __future__ import annotations

import logging
import time

import pydantic
import redis

from looper_common.contracts import policy_store
from looper_common.contracts.blueprint import ExplorationSpec

log = logging.getLogger(__name__)


class ActivePolicies:
    """Active version and exploration override of each blueprint, cached for ``ttl_s``."""

    def __init__(self, client: redis.Redis, ttl_s: float) -> None:
        self._redis = client
        self._ttl = ttl_s
        self._cached: dict[str, tuple[float, str | None, ExplorationSpec | None]] = {}
        self.asked_redis = False  # whether the last get() read Redis (or answered from the cache)
        # Parsed overrides by their raw JSON: the same object for the same field, so the
        # SDK can tell "unchanged" by identity; invalid ones map to None (warned once).
        self._specs: dict[bytes, ExplorationSpec | None] = {}

    def get(self, blueprint: str) -> tuple[str | None, ExplorationSpec | None]:
        """``(active version or None, the version's exploration override or None)``.

        A Redis error propagates (the caller serves the default); what was cached stays,
        for :meth:`cached`.
        """
        now = time.monotonic()
        cached = self._cached.get(blueprint)
        self.asked_redis = False
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        self.asked_redis = True
        last = cached[1] if cached is not None else None
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(policy_store.active_key(blueprint))
        if last is not None:
            pipe.hget(policy_store.meta_key(blueprint, last), policy_store.EXPLORATION_FIELD)
        replies = pipe.execute()
        version = replies[0].decode() if replies[0] is not None else None
        raw = None
        if version is not None and version == last:
            raw = replies[1]
        elif version is not None:  # the pointer moved: the new version's field
            raw = self._redis.hget(policy_store.meta_key(blueprint, version), policy_store.EXPLORATION_FIELD)
        spec = self._override(blueprint, version, raw)
        self._cached[blueprint] = (now + self._ttl, version, spec)
        return version, spec

    def cached(self, blueprint: str) -> tuple[str | None, ExplorationSpec | None]:
        """The last version and override read, however old, without asking Redis."""
        cached = self._cached.get(blueprint)
        return (cached[1], cached[2]) if cached is not None else (None, None)

    def _override(self, blueprint: str, version: str | None, raw: bytes | None) -> ExplorationSpec | None:
        if raw is None:
            return None
        if raw not in self._specs:
            try:
                self._specs[raw] = ExplorationSpec.model_validate_json(raw)
            except pydantic.ValidationError as err:
                log.warning(
                    "%s: policy version %s has an invalid exploration field %r, using the blueprint's: %s",
                    blueprint, version, raw[:200], err,
                )
                self._specs[raw] = None
        return self._specs[raw]
