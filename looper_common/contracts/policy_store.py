"""Redis layout of published policies (DESIGN.md §6), shared by the SDK and publishing.

``looper:policy:{<blueprint>}:active`` holds the active version; each unit's entry is
``looper:policy:<blueprint>:<version>:<unit_id>``, a compact JSON document
``{"a": chosen action, "s": {action: score}}``. Entries of a version are written
before the pointer switches to it, so a reader never sees a half-written version.
The version's meta hash ``looper:policy:{<blueprint>}:meta:<version>`` describes it; its
field ``exploration`` (JSON of an ``ExplorationSpec``), when present, replaces the
blueprint's exploration for decisions served from that version.

Redis Cluster: the pointer, the history and every meta hash of a blueprint carry the
hash tag ``{<blueprint>}``, so they live in one slot and the pointer switch and
rollback (WATCH/MULTI over them) stay atomic on a cluster as on one Redis. The unit
entries carry no tag: each hashes on its whole key, so one version's entries spread
over every primary and a batch lookup is one MGET per slot (``redis_conn.batch_get``).
"""

from __future__ import annotations

import json

PREFIX = "looper:policy:"


def _tagged(blueprint: str) -> str:
    """The prefix of a blueprint's pointer, history and meta keys: one hash slot per blueprint."""
    return f"{PREFIX}{{{blueprint}}}:"


def active_key(blueprint: str) -> str:
    return f"{_tagged(blueprint)}active"


def history_key(blueprint: str) -> str:
    """List of previously active versions, newest first (for rollback)."""
    return f"{_tagged(blueprint)}history"


def meta_key(blueprint: str, version: str) -> str:
    """Hash describing a published version; it expires just before the version's entries."""
    return f"{_tagged(blueprint)}meta:{version}"


EXPLORATION_FIELD = "exploration"  # meta field: the version's own ExplorationSpec (JSON)


def entry_key(blueprint: str, version: str, unit_id: str) -> str:
    return f"{PREFIX}{blueprint}:{version}:{unit_id}"


def encode_entry(action: str, scores: dict[str, float]) -> bytes:
    return json.dumps({"a": action, "s": scores}, separators=(",", ":")).encode()


def decode_entry(raw: bytes | str) -> tuple[str, dict[str, float]]:
    doc = json.loads(raw)
    return doc["a"], doc["s"]
