"""scripts/redis.sh with LOOPER_REDIS_PASSWORD: a real redis-server with requirepass, the password never shown."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT, _free_port, command_lines

PASSWORD = 'tidy-"pw\\7-secret'


@pytest.fixture
def script(tmp_path: Path) -> Path:
    """A copy of scripts/redis.sh under ``tmp_path``, so its var/redis/ is there."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "redis.sh", tmp_path / "scripts" / "redis.sh")
    return tmp_path / "scripts" / "redis.sh"


def _run(script: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), command], env=env, capture_output=True, text=True, timeout=60)


def test_requirepass_from_the_environment_is_never_shown(script: Path) -> None:
    port = _free_port()
    env = {**os.environ, "LOOPER_REDIS_PORT": str(port), "LOOPER_REDIS_PASSWORD": PASSWORD}
    started = _run(script, "start", env)
    try:
        assert started.returncode == 0, started.stderr
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        client = redis.Redis(port=port, password=PASSWORD)
        assert client.ping()
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        conf = script.parent.parent / "var" / "redis" / "redis.conf"
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        processes = command_lines()
        assert PASSWORD not in processes
        assert _run(script, "status", env).returncode == 0
        assert _run(script, "status", {**env, "LOOPER_REDIS_PASSWORD": ""}).returncode == 1
    finally:
        stopped = _run(script, "stop", env)
    log = (script.parent.parent / "var" / "redis" / "redis.log").read_text()
    for text in (started.stdout, started.stderr, stopped.stdout, stopped.stderr, log):
        assert PASSWORD not in text
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, password=PASSWORD, socket_connect_timeout=1).ping()


def test_without_a_password_the_server_needs_none(script: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "LOOPER_REDIS_PASSWORD"} | {"LOOPER_REDIS_PORT": str(port)}
    try:
        assert _run(script, "start", env).returncode == 0
        assert redis.Redis(port=port).ping()
        assert "requirepass" not in (script.parent.parent / "var" / "redis" / "redis.conf").read_text()
    finally:
        _run(script, "stop", env)
