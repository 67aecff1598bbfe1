"""Passwords never appear in a URL the SDK or the simulator prints."""

from __future__ import annotations

import pytest

from looper_common.sdk.connection import mask_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret@127.0.0.1:6390/0", "redis://:***@127.0.0.1:6390/0"),
        ("rediss://app:p%40ss@redis.example.com:6380/1", "rediss://app:***@redis.example.com:6380/1"),
        ("redis://[::1]:6390/0", "redis://[::1]:6390/0"),
        ("redis://u:pw@[::1]:6390/0", "redis://u:***@[::1]:6390/0"),
        ("redis://127.0.0.1:6390/0", "redis://127.0.0.1:6390/0"),
        ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
        ("redis://u:pw@host:notaport/0", "redis://u:***@host:notaport/0"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked
