"""Time-ordered identifiers.

A decision id is a UUIDv7 (48-bit millisecond timestamp, version and variant bits)
whose last 24 bits carry a tag of the blueprint name. ``log_observations`` receives
only the decision id, days later and often in another process; the tag tells it
which blueprint's stream the observation belongs to, with no lookup. The remaining
50 bits are random.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Sequence

_VERSION_7 = 0x7 << 76
_VARIANT = 0x2 << 62
_TAG_BITS = 24
_TAG_MASK = (1 << _TAG_BITS) - 1
_TS_MASK = (1 << 48) - 1
# The variant digit: "10" then the two highest of the 38 random bits that follow it.
_VARIANT_DIGIT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def blueprint_tag(name: str) -> int:
    """24-bit tag of a blueprint name, embedded in its decision ids."""
    return zlib.crc32(name.encode()) & _TAG_MASK


def tag_of(decision_id: str) -> int:
    """The blueprint tag carried by a decision id (its last six hex digits)."""
    return int(decision_id[-6:], 16)


def _format(value: int) -> str:
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_decision_id(tag: int, ts_ms: int, rand: int | None = None) -> str:
    """A UUIDv7 for a decision taken at ``ts_ms``, tagged with its blueprint.

    ``rand`` (64 random bits) is drawn from the OS unless given; a seeded source makes
    simulations reproducible down to every decision id and exploration draw.
    """
    if rand is None:
        rand = int.from_bytes(os.urandom(8), "big")
    rand_a = rand >> 52  # 12 bits
    rand_b = (rand & ((1 << 38) - 1)) << _TAG_BITS  # 38 random bits, then the tag
    value = (ts_ms & ((1 << 48) - 1)) << 80 | _VERSION_7 | rand_a << 64 | _VARIANT | rand_b | tag
    return _format(value)


def new_decision_ids(tag: int, stamps: Sequence[int], rands: Sequence[int] | None = None) -> list[str]:
    """``new_decision_id`` for each of ``stamps``: the same ids, for one os.urandom call.

    With ``rands`` (64 bits each) the ids equal ``new_decision_id(tag, ts, rand)``; the
    OS default reads 8 bytes per id at once and uses them as those 64 bits. The id is
    cut from the hex digits of ``rand``: its top 12 bits, then a variant digit from
    bits 36-37, then bits 24-35 and 0-23 (bits 38-51 are unused, as in ``new_decision_id``).
    """
    n = len(stamps)
    if rands is None:
        d = os.urandom(8 * n).hex()
    else:
        if len(rands) != n or not all(0 <= r < 1 << 64 for r in rands):
            return [new_decision_id(tag, ts, r) for ts, r in zip(stamps, rands, strict=True)]
        d = "".join([f"{r:016x}" for r in rands])
    if tag & _TAG_MASK != tag:
        rands = [int(d[i : i + 16], 16) for i in range(0, 16 * n, 16)]
        return [new_decision_id(tag, ts, r) for ts, r in zip(stamps, rands, strict=True)]
    tail = f"{tag:06x}"
    v = _VARIANT_DIGIT
    if n and stamps.count(stamps[0]) == n:  # the usual batch: one timestamp for all
        head = _head(stamps[0])
        return [f"{head}{d[j:j+3]}-{v[d[j+6]]}{d[j+7:j+10]}-{d[j+10:j+16]}{tail}" for j in range(0, 16 * n, 16)]
    heads: dict[int, str] = {}
    out = []
    for i, ts in enumerate(stamps):
        head = heads.get(ts) or heads.setdefault(ts, _head(ts))
        j = 16 * i
        out.append(f"{head}{d[j:j+3]}-{v[d[j+6]]}{d[j+7:j+10]}-{d[j+10:j+16]}{tail}")
    return out


def _head(ts_ms: int) -> str:
    """The first 15 characters of a decision id at ``ts_ms``: time, then the version digit."""
    t = f"{ts_ms & _TS_MASK:012x}"
    return f"{t[:8]}-{t[8:]}-7"


def observation_event_id(decision_id: str, name: str, ts_ms: int, value: float) -> str:
    """Deterministic id of an observation, so a retried ``log_observations`` is deduplicated."""
    digest = hashlib.blake2b(
        f"{decision_id}|{name}|{ts_ms}|{value!r}".encode(), digest_size=16
    ).hexdigest()
    return _format(int(digest, 16))
