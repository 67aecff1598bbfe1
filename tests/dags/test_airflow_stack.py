"""``scripts/airflow.sh start`` on a private port: every listening socket of the stack is on
127.0.0.1, the scheduler starts only once the api-server answers, and the tasks' execution
API URL follows the port (real Airflow processes, SQLite under a temporary AIRFLOW_HOME)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration
SCRIPT = ROOT / "scripts" / "airflow.sh"
SERVICES = ("api-server", "scheduler", "dag-processor")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(pid: int) -> set[tuple[str, int]]:
    """``(address, port)`` of every listening socket of ``pid`` and its descendants."""
    root = psutil.Process(pid)
    found = set()
    for proc in (root, *root.children(recursive=True)):
        try:
            found |= {c.laddr[:2] for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except psutil.NoSuchProcess:
            continue
    return found


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:  # it exited meanwhile
        return None


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return {**env, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW_PORT": str(_free_port()),
            "LOOPER_VENV": sys.prefix, "PYTHONPATH": str(ROOT)}


def test_the_stack_listens_on_loopback_only_and_the_scheduler_waits_for_the_api_server(stack_env):
    port, home = int(stack_env["AIRFLOW_PORT"]), Path(stack_env["AIRFLOW_HOME"])
    try:
        started = subprocess.run(["bash", str(SCRIPT), "start"], env=stack_env, capture_output=True,
                                 text=True, timeout=600)
        assert started.returncode == 0, started.stdout + started.stderr
        # start returned: the api-server answers before the scheduler was launched
        lines = started.stdout.splitlines()
        assert [i for i, line in enumerate(lines) if "waiting for the api-server" in line] < \
               [i for i, line in enumerate(lines) if "started scheduler" in line]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=10) as reply:
            assert reply.status == 200
        pids = {s: int((home / f"{s}.pid").read_text()) for s in SERVICES}
        # the scheduler is past the point where it would start its log server
        deadline = time.monotonic() + 300
        while "Starting the scheduler" not in (home / "logs" / "scheduler.log").read_text():
            assert psutil.pid_exists(pids["scheduler"]) and time.monotonic() < deadline, \
                (home / "logs" / "scheduler.log").read_text()[-2000:]
            time.sleep(1)
        sockets = {s: _listening(pid) for s, pid in pids.items()}
        assert ("127.0.0.1", port) in sockets["api-server"]
        assert {addr for found in sockets.values() for addr, _ in found} == {"127.0.0.1"}, sockets
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=stack_env, capture_output=True, timeout=120)
    # stop ended every service and every worker it forked (the scheduler's LocalExecutor workers); a zombie
    # has ended too, only not been reaped yet by PID 1, which adopted it when the start script exited
    left = [p.info for p in psutil.process_iter(["pid", "cmdline", "status"])
            if (p.pid in pids.values() or _group(p.pid) in pids.values()) and p.info["status"] != psutil.STATUS_ZOMBIE]
    assert left == [], left


def test_the_execution_api_url_and_the_log_server_port_follow_the_configured_port(stack_env):
    port = int(stack_env["AIRFLOW_PORT"])

    def value(section: str, key: str) -> str:
        out = subprocess.run(["bash", str(SCRIPT), "run", "config", "get-value", section, key],
                             env=stack_env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]  # after init's "[airflow] migrating" line

    assert value("core", "execution_api_server_url") == f"http://127.0.0.1:{port}/execution/"
    assert value("api", "host") == "127.0.0.1"
    assert value("logging", "worker_log_server_port") == str(port + 1)
