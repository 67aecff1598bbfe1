"""Spark's xxhash64 in NumPy: the published XXH64 values, and Spark's own hashes and OPE buckets."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from looper_common.decision_science import spark_hash
from looper_common.decision_science.ope import DEFAULT_BUCKETS

pytestmark = pytest.mark.integration

# lengths 0..40 cross every branch of XXH64 (bytes, 4-byte word, 8-byte words, 32-byte stripes)
IDS = ["", "a", "é", "日本語", "🙂" * 9, "s0-123", *("x" * k for k in range(41)), *(f"d{i}" for i in range(60)),
       "decision-0f8e2c1a-6b1d-4c3e-9a7f-2d5b8e1c4a90", None]


def test_standard_xxh64_values():
    # the reference implementation's values with seed 0
    assert [int(h) for h in spark_hash.hash_strings(["", "a", "abc"], seed=0)] == [
        0xEF46DB3751D8E999, 0xD24EC4F1A98C6E5B, 0x44BC2CF5AD770999]
    assert int(spark_hash.hash_strings(["Nobody inspects the spammish repetition"], seed=0)[0]) == 0xFBCEA83C8A378BF1


@pytest.mark.parametrize("seed", [0, 7, -5, 20260203, 2**31])  # 2**31: F.lit makes it a long
def test_hashes_and_buckets_are_sparks(spark, seed):
    frame = spark.createDataFrame([(i,) for i in IDS], "id string")
    hashed = F.xxhash64(F.col("id"), F.lit(seed))
    rows = frame.select(hashed.alias("hash"), F.pmod(hashed, F.lit(DEFAULT_BUCKETS)).alias("bucket")).collect()
    mine = spark_hash.as_signed(spark_hash.hash_literal(seed, spark_hash.hash_strings(IDS)))
    assert [int(h) for h in mine] == [r["hash"] for r in rows]
    assert [int(b) for b in mine % DEFAULT_BUCKETS] == [r["bucket"] for r in rows]
