"""redis-servers of the SDK's own, for tests that pause, fill, password-protect or stop them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisProcess:
    """A real redis-server on its own port; ``pause()`` (SIGSTOP) makes it hang."""

    def __init__(self, workdir: Path, *args: str, password: str | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.password = password
        extra = ["--requirepass", password] if password else []
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir), *extra, *args],
            stdout=subprocess.DEVNULL,
        )
        self.client = redis.Redis(port=self.port, password=password)
        for _ in range(100):
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        pytest.fail("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def connections_received(self) -> int:
        return int(self.client.info("stats")["total_connections_received"])

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.resume()
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[type[RedisProcess]]:
    """Start redis-servers with ``redis_process(*args, password=...)``; all are stopped afterwards."""
    started: list[RedisProcess] = []

    def start(*args: str, password: str | None = None, port: int | None = None) -> RedisProcess:
        workdir = tmp_path / f"redis-{len(started)}"
        workdir.mkdir()
        server = RedisProcess(workdir, *args, password=password, port=port)
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        server.stop()
