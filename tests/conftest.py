"""Shared fixtures: a real redis-server per test session, one SparkSession with Delta."""

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

from looper_common.contracts.blueprint import Blueprint, parse_blueprint


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Close the SDK clients tests left open while pytest's logging still works.

    A client's exit flush logs what it could not send; after the session, the handlers
    tests configured point at capture files pytest has closed, and every such line would
    print "--- Logging error ---" instead. Handlers on closed streams are dropped first.
    """
    import logging

    from looper_common.sdk import at_exit

    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in list(getattr(logger, "handlers", ())):
            stream = getattr(handler, "stream", None)
            if stream is not None and getattr(stream, "closed", False):
                logger.removeHandler(handler)
    at_exit.close_all()
    _stop_connect_server()


def _stop_connect_server() -> None:
    """Stop the Spark Connect server this test session started (if any test needed Spark)."""
    from looper_common.contracts.config import load_settings
    from looper_common.lake import connect_server

    settings = load_settings("local", home=ROOT)
    connect_server.stop(settings.model_copy(update={"spark": settings.spark.model_copy(
        update={"connect": TEST_SPARK_CONNECT})}))

ROOT = Path(__file__).resolve().parent.parent
# Tests are hermetic: settings overrides exported by the Makefile or a shell must not
# point them (or the jobs they start) at the developer's lake, Redis or MLflow.
for _var in ("LOOPER_ENV", "LOOPER_LAKE_ROOT", "LOOPER_BLUEPRINTS_DIR", "LOOPER_REDIS_URL", "LOOPER_REDIS_CLUSTER",
             "LOOPER_MLFLOW_TRACKING_URI", "LOOPER_MLFLOW_ARTIFACT_ROOT", "LOOPER_SPARK_MASTER",
             "LOOPER_SPARK_CONNECT"):
    os.environ.pop(_var, None)
# Airflow reads its settings at import: keep its state under var/, never in ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "var" / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command_lines() -> str:
    """Every process's whole command line, one per line: read from /proc, so never cut to the terminal's width
    (``ps -eo args`` cuts at COLUMNS, or 80 when it is not a terminal, which hid a process and a secret alike)."""
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):  # the process exited meanwhile
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace").strip())
    return "\n".join(lines)


# The session's own Spark Connect server (started by the first test or job that needs Spark,
# stopped at the end): the Spark tests, and the jobs that DAG tests start, share one warm driver
# that runs this checkout's code, never a server a demo or another checkout left running.
TEST_SPARK_CONNECT = f"sc://127.0.0.1:{_free_port()}"
os.environ["LOOPER_SPARK_CONNECT"] = TEST_SPARK_CONNECT


free_port = _free_port


class RedisProcess:
    """A real redis-server of a test's own, on its own port; ``pause()`` (SIGSTOP) makes it hang.

    ``args`` are extra redis-server options (``"--maxmemory", "4mb"``); ``password`` sets
    requirepass (and the client's password).
    """

    def __init__(self, workdir: Path, *args: str, password: str | None = None, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `make bootstrap` (it installs it)")
        self.port = port or _free_port()
        self.password = password
        extra = ["--requirepass", password] if password else []
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
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
    """Start redis-servers with ``redis_process(*args, password=..., port=...)``; all are stopped afterwards."""
    started: list[RedisProcess] = []

    def start(*args: str, password: str | None = None, port: int | None = None) -> RedisProcess:
        workdir = tmp_path / f"redis-{len(started)}"
        workdir.mkdir()
        server = RedisProcess(workdir, *args, password=password, port=port)
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        if server.proc.poll() is None:
            server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A throwaway redis-server (the real binary) for the whole test session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make bootstrap` (it installs it)")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--maxmemory-policy", "noeviction", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    return client


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A real Redis Cluster (3 masters, 3 replicas; ``tests/redis_cluster.py``) for the session."""
    from tests.redis_cluster import LocalCluster

    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_client(redis_cluster):
    """A cluster client on an emptied cluster."""
    redis_cluster.flush()
    return redis_cluster.client()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory):
    from looper_common.contracts.config import load_settings

    os.environ.setdefault("LOOPER_HOME", str(ROOT))
    base = load_settings("local")
    conf = {
        **base.spark.conf,
        "spark.driver.memory": "2g",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("warehouse")),
    }
    return base.model_copy(
        update={
            "lake_root": str(tmp_path_factory.mktemp("lake")),
            "spark": base.spark.model_copy(update={"master": "local[2]", "conf": conf}),
        }
    )


@pytest.fixture(scope="session")
def spark(settings):
    """One SparkSession with Delta for the whole test session."""
    from looper_common.lake.spark import get_spark

    session = get_spark(settings, "looper-tests")
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path: Path, request: pytest.FixtureRequest):
    """A lake in a temporary folder; the session-wide SparkSession starts only if a request needs Spark."""
    from looper_common.lake.engine import Lake

    return Lake(str(tmp_path / "lake"), spark=lambda: request.getfixturevalue("spark"))


def make_blueprint(**overrides: object) -> Blueprint:
    """A small binary blueprint for tests; ``overrides`` replace top-level sections."""
    data: dict[str, object] = {
        "name": "t_notify",
        "decision": {"actions": ["send", "skip"], "default_action": "skip"},
        "features": [
            {"name": "recency", "type": "float"},
            {"name": "visits", "type": "int"},
            {"name": "opted_in", "type": "bool"},
            {"name": "country", "type": "category"},
        ],
        "labels": [
            {"name": "clicked", "observation": "click", "window": "1h", "aggregation": "any"},
            {"name": "clicks", "observation": "click", "window": "1h", "aggregation": "count"},
            {"name": "revenue", "observation": "purchase", "window": "2h", "aggregation": "sum"},
            {"name": "best", "observation": "purchase", "window": "2h", "aggregation": "max"},
            {"name": "last_rating", "observation": "rating", "window": "2h",
             "aggregation": "last", "default": -1},
        ],
        "model": {"task": "binary"},
        "policy": {"type": "threshold", "params": {"threshold": 0.5},
                   "exploration": {"type": "epsilon_greedy", "epsilon": 0.1}},
        "objectives": {"maximize": "clicked"},
    }
    data.update(overrides)
    return parse_blueprint(data, "test")


FEATURES = {"recency": 2.5, "visits": 3, "opted_in": True, "country": "us"}
