"""A lake on an object store opened without keys says which variables to set, not delta-rs' metadata-service error."""

from __future__ import annotations

import pytest

from looper_common.lake.delta import LakeCredentialsError, open_table
from tests.conftest import free_port


def test_missing_object_store_keys_are_named(monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: no S3 server, no metadata service
    options = {"AWS_ENDPOINT_URL": closed, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
               "AWS_METADATA_ENDPOINT": closed}
    with pytest.raises(LakeCredentialsError) as raised:
        open_table("s3://looper/lake/bronze/decisions", options)
    message = str(raised.value)
    assert message.startswith("s3://looper/lake/bronze/decisions: no object store credentials")
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in message and "scripts/cluster.sh env" in message
