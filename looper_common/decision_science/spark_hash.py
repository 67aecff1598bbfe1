"""Spark's ``xxhash64`` in NumPy: the same 64-bit hashes without a JVM.

Spark's ``xxhash64(c1, c2, ...)`` starts from the seed 42 and folds the columns into the
hash one after the other, each hashed with the hash so far as its seed: a string as the
XXH64 of its UTF-8 bytes, an int as the XXH64 of its 4 little-endian bytes, a long of its
8 (Spark's ``XXH64.hashUnsafeBytes``, ``hashInt`` and ``hashLong``: the standard
algorithm); a null leaves the hash as it was. The result is read as a signed long.

NumPy's unsigned 64-bit arithmetic on arrays wraps modulo 2^64 as XXH64 needs, so the
strings are hashed as a batch per byte length (a matrix of their bytes), not one by one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPARK_SEED = 42  # the seed Spark's xxhash64 starts from

_U64 = np.uint64
P1 = _U64(0x9E3779B185EBCA87)
P2 = _U64(0xC2B2AE3D27D4EB4F)
P3 = _U64(0x165667B19E3779F9)
P4 = _U64(0x85EBCA77C2B2AE63)
P5 = _U64(0x27D4EB2F165667C5)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << _U64(r)) | (x >> _U64(64 - r))


def _round(acc: np.ndarray, lane: np.ndarray) -> np.ndarray:
    return _rotl(acc + lane * P2, 31) * P1


def _avalanche(h: np.ndarray) -> np.ndarray:
    h = (h ^ (h >> _U64(33))) * P2
    h = (h ^ (h >> _U64(29))) * P3
    return h ^ (h >> _U64(32))


def _hash_equal_length(data: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """XXH64 of each row of ``data`` (uint8, one row per input, all of the same length)."""
    length = data.shape[1]
    words = np.ascontiguousarray(data[:, : length // 8 * 8]).view("<u8")
    stripes = length // 32
    if stripes:
        acc = [seeds + P1 + P2, seeds + P2, seeds.copy(), seeds - P1]
        for s in range(stripes):
            acc = [_round(a, words[:, 4 * s + j]) for j, a in enumerate(acc)]
        h = _rotl(acc[0], 1) + _rotl(acc[1], 7) + _rotl(acc[2], 12) + _rotl(acc[3], 18)
        for a in acc:
            h = (h ^ _round(np.zeros_like(a), a)) * P1 + P4
    else:
        h = seeds + P5
    h = h + _U64(length)
    for w in range(4 * stripes, length // 8):
        h = _rotl(h ^ _round(np.zeros_like(h), words[:, w]), 27) * P1 + P4
    offset = length // 8 * 8
    if length - offset >= 4:
        word = np.ascontiguousarray(data[:, offset: offset + 4]).view("<u4")[:, 0].astype(_U64)
        h = _rotl(h ^ (word * P1), 23) * P2 + P3
        offset += 4
    for i in range(offset, length):
        h = _rotl(h ^ (data[:, i].astype(_U64) * P5), 11) * P1
    return _avalanche(h)


def hash_strings(values: Sequence[str | None] | np.ndarray, seed: int = SPARK_SEED) -> np.ndarray:
    """Spark's ``xxhash64`` of each string (its UTF-8 bytes) with ``seed``, as uint64; None keeps the seed."""
    encoded = [None if v is None else v.encode("utf-8") for v in values]
    lengths = np.fromiter((-1 if b is None else len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    out = np.full(len(encoded), seed & 0xFFFFFFFFFFFFFFFF, dtype=_U64)
    for length in np.unique(lengths[lengths >= 0]):
        rows = np.flatnonzero(lengths == length)
        data = np.frombuffer(b"".join(encoded[r] for r in rows), dtype=np.uint8).reshape(len(rows), int(length))
        out[rows] = _hash_equal_length(data, out[rows])
    return out


def hash_int(value: int, seeds: np.ndarray) -> np.ndarray:
    """Fold an IntegerType value into each hash of ``seeds`` (Spark's ``XXH64.hashInt``)."""
    h = seeds + _U64(4) + P5
    word = np.full_like(seeds, value & 0xFFFFFFFF)
    h = _rotl(h ^ (word * P1), 23) * P2 + P3
    return _avalanche(h)


def hash_long(value: int, seeds: np.ndarray) -> np.ndarray:
    """Fold a LongType value into each hash of ``seeds`` (Spark's ``XXH64.hashLong``)."""
    h = seeds + _U64(8) + P5
    word = np.full_like(seeds, value & 0xFFFFFFFFFFFFFFFF)
    h = _rotl(h ^ _round(np.zeros_like(h), word), 27) * P1 + P4
    return _avalanche(h)


def hash_literal(value: int, seeds: np.ndarray) -> np.ndarray:
    """Fold ``F.lit(value)`` into each hash: an int when it fits in 32 bits (as Spark types it), else a long."""
    return hash_int(value, seeds) if -(2**31) <= value < 2**31 else hash_long(value, seeds)


def as_signed(hashes: np.ndarray) -> np.ndarray:
    """The hashes as Spark returns them (a signed long)."""
    return hashes.view(np.int64)
