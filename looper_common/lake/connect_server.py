"""The Spark Connect server the jobs' sessions share, started on first need on this machine.

With ``spark.connect`` set (``sc://127.0.0.1:15002`` in ``conf/local.yaml``), a job that
needs Spark is a client of that server instead of starting a JVM of its own: the server's
driver stays warm between tasks, so a task pays a gRPC connection, not 10-15 s of JVM
start. The server is Spark's own ``SparkConnectServer`` launched by spark-submit with the
environment's master, Delta jars, ``spark.conf`` and Python (the same command line as
``looper submit``), bound to 127.0.0.1.

When the address is on this machine and nothing answers there, :func:`ensure_server`
starts it detached (one starter at a time, under a lock file) and it stays up for the
next tasks; ``looper spark-connect stop`` (or ``make clean``) stops it. Its pid and log
are under ``var/spark-connect/<port>/``. A server on another host is never started here.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from looper_common.contracts.config import Settings

log = logging.getLogger(__name__)

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = 15002
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
START_TIMEOUT_S = 180.0
# what pyspark sets in a process that opened a Spark Connect session; a classic session (or a
# spark-submit started from that process) must not inherit them, or pyspark acts as a client
CONNECT_CLIENT_VARS = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE")


class ConnectServerError(RuntimeError):
    """The configured Spark Connect server cannot be reached or started (the message says how to fix it)."""


@dataclass(frozen=True)
class ConnectAddress:
    """``sc://host:port`` of a Spark Connect server."""

    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> ConnectAddress:
        parts = urlsplit(url.split(";", 1)[0])
        if parts.scheme != "sc" or not parts.hostname:
            raise ConnectServerError(f"spark.connect: {url!r} is not a Spark Connect address (sc://host:port)")
        return cls(parts.hostname, parts.port or DEFAULT_PORT)

    @property
    def local(self) -> bool:
        return self.host in LOCAL_HOSTS

    def answers(self, timeout: float = 1.0) -> bool:
        with socket.socket() as sock:
            sock.settimeout(timeout)
            return sock.connect_ex((self.host, self.port)) == 0


def state_dir(settings: Settings, address: ConnectAddress) -> Path:
    return Path(settings.home) / "var" / "spark-connect" / str(address.port)


def ensure_server(settings: Settings) -> ConnectAddress:
    """The configured server's address, after starting it here if it is local and not up yet."""
    if not settings.spark.connect:
        raise ConnectServerError("spark.connect is not set")
    address = ConnectAddress.parse(settings.spark.connect)
    if address.answers():
        return address
    if not address.local:
        raise ConnectServerError(
            f"no Spark Connect server answers at {settings.spark.connect}: start it there, or set "
            "spark.connect: null in conf/<env>.yaml to start a Spark session in each job")
    start(settings)
    return address


def server_conf(settings: Settings, address: ConnectAddress) -> dict[str, str]:
    """What the server needs beyond ``spark.conf``: Delta's session extension, its gRPC address, loopback."""
    from looper_common.lake.spark import DELTA_CONF

    return {
        "spark.sql.warehouse.dir": os.path.join(settings.home, "var", "spark-warehouse"),
        **DELTA_CONF,
        "spark.connect.grpc.binding.address": address.host,
        "spark.connect.grpc.binding.port": str(address.port),
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
    }


def start(settings: Settings, timeout_s: float = START_TIMEOUT_S) -> int | None:
    """Start the local server of ``spark.connect`` unless one answers; its pid (None: one was already up)."""
    from looper_common.submit import spark_submit

    address = ConnectAddress.parse(settings.spark.connect or "")
    folder = state_dir(settings, address)
    folder.mkdir(parents=True, exist_ok=True)
    with _lock(folder / "start.lock"):
        if address.answers():
            return None
        submission = spark_submit(settings, "looper-spark-connect", [
            *(arg for key, value in server_conf(settings, address).items() for arg in ("--conf", f"{key}={value}")),
            "--class", SERVER_CLASS,
        ])
        log.info("starting the Spark Connect server at %s (log: %s)", settings.spark.connect, folder / "server.log")
        started = time.monotonic()
        with open(folder / "server.log", "ab") as out:
            process = subprocess.Popen(submission.argv, env={**submission.env, "SPARK_LOCAL_IP": "127.0.0.1"},
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True, cwd=settings.home)
        (folder / "server.pid").write_text(str(process.pid))
        while not address.answers():
            if process.poll() is not None or time.monotonic() - started > timeout_s:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                raise ConnectServerError(
                    f"the Spark Connect server did not come up at {settings.spark.connect} "
                    f"(exit {process.poll()}); the end of {folder / 'server.log'}:\n{_tail(folder / 'server.log')}")
            time.sleep(0.5)
        log.info("Spark Connect server up at %s in %.1f s (pid %d)", settings.spark.connect,
                 time.monotonic() - started, process.pid)
        return process.pid


def stop(settings: Settings, timeout_s: float = 30.0) -> bool:
    """Stop the local server this machine started for ``spark.connect``; False when none was running."""
    address = ConnectAddress.parse(settings.spark.connect or "")
    pid_file = state_dir(settings, address) / "server.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    return True


def status(settings: Settings) -> str:
    """One line: where the configured server is and whether it answers."""
    if not settings.spark.connect:
        return "spark.connect is not set: each job that needs Spark starts its own session"
    address = ConnectAddress.parse(settings.spark.connect)
    state = "running" if address.answers() else "not running"
    return f"Spark Connect server {settings.spark.connect}: {state}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):  # reap it if it is our child
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""
