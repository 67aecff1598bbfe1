"""Bucket assignment: deterministic, even, independent of the exploration draw; and the percentile interval."""

from __future__ import annotations

import numpy as np
import pytest

from looper_common.contracts.ids import blueprint_tag, new_decision_ids
from looper_common.decision_science.bootstrap import assign_buckets, cells, decision_hashes, interval
from looper_common.decision_science.ope import DEFAULT_BUCKETS, OPEError
from looper_common.sdk.exploration import uniform_from_id

N = 100_000


@pytest.fixture(scope="module")
def ids() -> list[str]:
    """100,000 decision ids as the SDK makes them (UUIDv7-like), with seeded random bits."""
    rng = np.random.default_rng(20261202)
    stamps = (1_800_000_000_000 + np.sort(rng.integers(0, 86_400_000, N))).tolist()
    return new_decision_ids(blueprint_tag("notification_send"), stamps, rng.integers(0, 2**62, N).tolist())


def chi_square(bucket: np.ndarray, buckets: int) -> float:
    counts = np.bincount(bucket, minlength=buckets)
    expected = len(bucket) / buckets
    return float(((counts - expected) ** 2 / expected).sum())


def test_buckets_are_a_function_of_the_id_and_the_seed_only():
    some = ["", "a", "é", "s0-1", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"]
    hashes = decision_hashes(some)
    assert hashes.dtype == np.uint64
    # pinned: a change of hash, personalization or mixing moves every decision's bucket
    assert assign_buckets(hashes, DEFAULT_BUCKETS, 0).tolist() == [130, 395, 265, 342, 406]
    assert assign_buckets(hashes, DEFAULT_BUCKETS, 7).tolist() == [20, 746, 982, 303, 177]
    np.testing.assert_array_equal(decision_hashes(np.array(some, dtype=object)), hashes)
    assert assign_buckets(decision_hashes(some[::-1]), DEFAULT_BUCKETS, 0).tolist() == [406, 342, 265, 395, 130]


def test_buckets_spread_the_ids_evenly(ids):
    hashes = decision_hashes(ids)
    # chi-square over 1,024 buckets has 1,023 degrees of freedom (sd 45): 6 sd above the mean fails
    bound = 1023 + 6 * np.sqrt(2 * 1023)
    for seed in (0, 1, 12345):
        bucket = assign_buckets(hashes, DEFAULT_BUCKETS, seed)
        assert bucket.min() >= 0 and bucket.max() < DEFAULT_BUCKETS
        assert chi_square(bucket, DEFAULT_BUCKETS) < bound
    assert chi_square(np.zeros(N, dtype=np.int64), DEFAULT_BUCKETS) > 1000 * bound  # what a constant scores
    assert chi_square(assign_buckets(hashes, 10, 0), 10) < 9 + 6 * np.sqrt(18)  # not only for powers of 2


def test_the_seed_draws_another_split(ids):
    hashes = decision_hashes(ids[:10_000])
    same = assign_buckets(hashes, DEFAULT_BUCKETS, 0) == assign_buckets(hashes, DEFAULT_BUCKETS, 1)
    assert same.mean() < 0.01  # by chance 1 in 1,024


def test_buckets_are_independent_of_the_exploration_draw(ids):
    u = np.array([uniform_from_id(i) for i in ids])
    hashes = decision_hashes(ids)
    bucket = assign_buckets(hashes, DEFAULT_BUCKETS, 0)
    # sd of a correlation on 100,000 independent pairs: 0.003
    assert abs(np.corrcoef(bucket, u)[0, 1]) < 0.015
    assert abs(np.corrcoef(hashes.astype("float64"), u)[0, 1]) < 0.015
    # what matters for OPE: the share that took the exploration branch (u < 0.1) is the same in every block
    # of buckets (16 blocks of 64: about 6,250 decisions each, sd of the share 0.004)
    explored = np.bincount(bucket // 64, weights=(u < 0.1).astype(float), minlength=16) / np.bincount(bucket // 64)
    assert np.abs(explored - 0.1).max() < 0.03
    # bucketing on the draw's own bits would fail that
    on_draw = (u * DEFAULT_BUCKETS).astype(np.int64) // 64
    assert np.abs(np.bincount(on_draw, weights=(u < 0.1).astype(float), minlength=16)
                  / np.bincount(on_draw) - 0.1).max() > 0.5


def test_ids_must_be_strings_and_buckets_positive():
    with pytest.raises(OPEError, match="decision_id must be strings"):
        decision_hashes([1, 2])
    with pytest.raises(OPEError, match="decision_id must be strings"):
        decision_hashes(["a", None])
    with pytest.raises(OPEError, match="buckets must be at least 1"):
        assign_buckets(decision_hashes(["a"]), 0)


def test_interval_is_the_percentile_interval_of_the_finite_replicas():
    replicas = np.concatenate([np.arange(1001, dtype=float), [np.nan, np.inf]])
    iv = interval(500.0, replicas, 0.05)
    assert (iv.value, iv.lower, iv.upper) == (500.0, 25.0, 975.0)
    assert iv.std_error == pytest.approx(np.arange(1001).std(ddof=1))
    assert iv.covers(500.0) and not iv.covers(980.0)
    empty = interval(1.0, np.array([np.nan]), 0.05)
    assert np.isnan(empty.lower) and np.isnan(empty.upper)


@pytest.mark.parametrize("groups", [1, 3, 5000])  # 5,000 groups x 1,024 buckets: sorted, not counted
def test_cells_are_the_non_empty_group_bucket_pairs_in_order(groups):
    rng = np.random.default_rng(groups)
    group = rng.integers(0, groups, 20_000)
    bucket = rng.integers(0, DEFAULT_BUCKETS, 20_000)
    keys, of_row = np.unique(group * DEFAULT_BUCKETS + bucket, return_inverse=True)
    got = cells(group, bucket, DEFAULT_BUCKETS)
    np.testing.assert_array_equal(got.of_row, of_row)
    np.testing.assert_array_equal(got.group, keys // DEFAULT_BUCKETS)
    np.testing.assert_array_equal(got.size, np.bincount(of_row))
    np.testing.assert_allclose(got.total(np.ones(20_000)), got.size)
