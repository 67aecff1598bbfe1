"""Bootstrap over hash buckets: which bucket each decision is in, the bucket sums, percentile intervals.

Every decision goes to one of ``buckets`` buckets by a hash of its ``decision_id``,
every per-decision term is summed per bucket, and the bootstrap resamples the bucket
sums with replacement. The split is random and i.i.d., so the bucket sums are
exchangeable and resampling them gives the sampling distribution of any estimator
that is a ratio of sums, from one pass over the decisions however many resamples are
drawn.

The bucket of a decision is computed here and nowhere else:

* :func:`decision_hashes`: the first 8 bytes of BLAKE2b over the id's UTF-8 bytes,
  personalized with ``b"looper.buckets"``, read as a little-endian uint64. The
  exploration draw (``looper_common.sdk.exploration.uniform_from_id``) is BLAKE2b of
  the same bytes without a personalization; BLAKE2b's personalization is part of its
  parameter block, so the two are independent hash functions and the bucket carries
  no information about the exploration draw. Bucketing on the draw's own bits would
  put the decisions that drew the same exploration branch together, and the buckets
  would differ in action mix. A hash of the id, not a row number or an ingest order,
  keeps every decision in its bucket whichever way the logs are read.
* :func:`assign_buckets`: ``splitmix64(hash XOR splitmix64(seed)) mod buckets``. The
  seed gives another random split of the same decisions; the id's hash does not depend
  on it, so a caller that evaluates the same decisions many times hashes them once.
  SplitMix64's finalizer (Steele, Lea and Flood, "Fast splittable pseudorandom number
  generators", OOPSLA 2014) is a bijection of 64-bit words that mixes every input bit
  into every output bit; a plain XOR with the seed would only permute the buckets.

Hashing is one ``hashlib`` call per id, about 0.8 s per million ids; everything
after it is vectorized.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from looper_common.decision_science.logged import OPEError

BUCKET_PERSON = b"looper.buckets"  # BLAKE2b personalization of the bucket hash (at most 16 bytes)

_U64 = np.uint64
_GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval and standard error."""

    value: float
    lower: float
    upper: float
    std_error: float

    def covers(self, truth: float) -> bool:
        return self.lower <= truth <= self.upper


def decision_hashes(decision_id: np.ndarray | Sequence[str]) -> np.ndarray:
    """Each id's 64-bit bucket hash (uint64): personalized BLAKE2b of its UTF-8 bytes."""
    blake2b = hashlib.blake2b
    try:
        digests = b"".join([blake2b(i.encode(), digest_size=8, person=BUCKET_PERSON).digest() for i in decision_id])
    except AttributeError:  # no .encode: not a string
        raise OPEError(f"decision_id must be strings, got {np.asarray(decision_id).dtype}") from None
    return np.frombuffer(digests, dtype="<u8").astype(_U64)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer on uint64 (wrapping arithmetic, as NumPy's uint64 does)."""
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def assign_buckets(hashes: np.ndarray, buckets: int, seed: int = 0) -> np.ndarray:
    """The bucket (0 .. buckets-1, int64) of each decision, from its :func:`decision_hashes` and ``seed``."""
    if buckets < 1:
        raise OPEError(f"buckets must be at least 1, got {buckets}")
    key = _splitmix64(np.array([(seed + _GOLDEN) & 0xFFFFFFFFFFFFFFFF], dtype=_U64))
    return (_splitmix64(np.asarray(hashes, dtype=_U64) ^ key) % _U64(buckets)).astype(np.int64)


@dataclass(frozen=True)
class Cells:
    """Each decision's cell (a non-empty (group, bucket) pair), cells ascending by group then bucket."""

    of_row: np.ndarray  # cell index of every decision
    group: np.ndarray  # group code of every cell
    size: np.ndarray  # decisions per cell

    def total(self, values: np.ndarray) -> np.ndarray:
        """The sum of ``values`` over each cell's decisions (added in row order)."""
        return np.bincount(self.of_row, weights=values, minlength=len(self.size))


def cells(group_codes: np.ndarray, bucket: np.ndarray, buckets: int) -> Cells:
    """The cells of decisions with these group codes (0 .. groups-1) and buckets."""
    key = group_codes * buckets + bucket
    span = (int(group_codes.max()) + 1) * buckets if len(key) else 0
    if span > max(4 * len(key), 1 << 20):  # many groups: sort rather than count every possible cell
        keys, of_row = np.unique(key, return_inverse=True)
        return Cells(of_row=of_row, group=keys // buckets, size=np.bincount(of_row, minlength=len(keys)))
    counts = np.bincount(key, minlength=span)
    keys = np.flatnonzero(counts)
    index = np.cumsum(counts > 0) - 1  # cell index of every possible key, ascending
    return Cells(of_row=index[key], group=keys // buckets, size=counts[keys])


def resample_counts(buckets: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """How often each of ``buckets`` bucket sums is drawn in each resample, (n_bootstrap, buckets)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(buckets, np.full(buckets, 1.0 / buckets), size=n_bootstrap)


def interval(value: float, replicas: np.ndarray, alpha: float) -> Interval:
    """The percentile interval at level ``1 - alpha`` of the finite bootstrap ``replicas`` around ``value``."""
    finite = replicas[np.isfinite(replicas)]
    if finite.size == 0:
        return Interval(value, float("nan"), float("nan"), float("nan"))
    lower, upper = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return Interval(value, float(lower), float(upper), float(finite.std(ddof=1)) if finite.size > 1 else 0.0)
