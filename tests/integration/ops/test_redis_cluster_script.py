"""scripts/redis-cluster.sh with LOOPER_REDIS_PASSWORD: a real 6-node Redis Cluster, the password never shown."""

from __future__ import annotations

import os
import random
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.conftest import ROOT, command_lines

pytestmark = pytest.mark.integration
PASSWORD = 'cl-"pw\\9-secret'
NODES = 6  # 3 masters, 1 replica each


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_run() -> int:
    """A first port with NODES consecutive ports free, and their cluster bus ports (port + 10000)."""
    for _ in range(200):
        first = random.randrange(20_000, 40_000)
        if all(_free(p) and _free(p + 10_000) for p in range(first, first + NODES)):
            return first
    pytest.fail("no run of free ports for a cluster")


@pytest.fixture
def script(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "redis-cluster.sh", tmp_path / "scripts" / "redis-cluster.sh")
    return tmp_path / "scripts" / "redis-cluster.sh"


def _run(script: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), command], env=env, capture_output=True, text=True, timeout=120)


def test_the_cluster_requires_the_password_and_never_shows_it(script: Path, tmp_path: Path) -> None:
    first = _free_run()
    data = tmp_path / "rcluster"
    env = {**os.environ, "LOOPER_RCLUSTER_PORT": str(first), "LOOPER_RCLUSTER_DIR": str(data),
           "LOOPER_REDIS_PASSWORD": PASSWORD}
    started = _run(script, "start", env)
    try:
        assert started.returncode == 0, started.stderr
        processes = command_lines()
        assert f"127.0.0.1:{first}" in processes  # redis-server's title: the node is in the list
        assert PASSWORD not in processes
        for port in range(first, first + NODES):
            conf = data / str(port) / "redis.conf"
            assert stat.S_IMODE(conf.stat().st_mode) == 0o600
            with pytest.raises(redis.AuthenticationError):
                redis.Redis(port=port).ping()
            node = redis.Redis(port=port, password=PASSWORD)
            assert node.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
            replication = node.info("replication")
            if replication["role"] == "slave":  # masterauth: the replica's link to its primary is up
                assert replication["master_link_status"] == "up"
        roles = [redis.Redis(port=p, password=PASSWORD).info("replication")["role"]
                 for p in range(first, first + NODES)]
        assert sorted(roles) == ["master"] * 3 + ["slave"] * 3
        client = RedisCluster(host="127.0.0.1", port=first, password=PASSWORD)
        client.set("looper:policy:{notification_send}:active", "v1")
        assert client.get("looper:policy:{notification_send}:active") == b"v1"
        client.close()
        status = _run(script, "status", env)
        assert status.returncode == 0
    finally:
        stopped = _run(script, "stop", env)
    outputs = [started.stdout, started.stderr, status.stdout, stopped.stdout, stopped.stderr]
    outputs += [(data / str(p) / "redis.log").read_text() for p in range(first, first + NODES)]
    outputs.append((data / "create.log").read_text())
    assert not [text for text in outputs if PASSWORD in text]
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=first, password=PASSWORD, socket_connect_timeout=1).ping()
