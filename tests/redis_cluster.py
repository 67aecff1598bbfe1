"""A real Redis Cluster for tests: 3 masters and 3 replicas of redis-server on free ports.

Each node is a ``redis-server --cluster-enabled yes`` child process under a temporary
folder, bound to 127.0.0.1, with its cluster bus on a second free port
(``cluster-port``); ``redis-cli --cluster create --cluster-replicas 1`` joins them.
:meth:`LocalCluster.kill_master_of` SIGKILLs the primary of a key's slot, and
:meth:`LocalCluster.wait_failover` waits (on the cluster's own state, not a clock)
until a replica has taken its slots over.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

NODE_TIMEOUT_MS = 3000  # how long a silent primary takes to be declared failed
# cluster-replica-validity-factor 0: a replica takes over however long its link was down (a loaded test box)


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _wait(condition, what: str, attempts: int = 600, pause_s: float = 0.1) -> None:
    """Poll ``condition`` until true; a bound on attempts so a broken cluster fails the test, not hangs it."""
    for _ in range(attempts):
        with contextlib.suppress(redis.RedisError):
            if condition():
                return
        time.sleep(pause_s)
    raise RuntimeError(f"redis cluster: {what} did not happen")


class LocalCluster:
    """``masters`` primaries with ``replicas`` replicas each, started at construction."""

    def __init__(self, workdir: Path, masters: int = 3, replicas: int = 1) -> None:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            raise RuntimeError("redis-server and redis-cli are needed (make bootstrap installs them)")
        count = masters * (replicas + 1)
        ports = _free_ports(2 * count)
        self.ports, bus = ports[:count], ports[count:]
        self.procs: dict[int, subprocess.Popen] = {}
        for port, bus_port in zip(self.ports, bus, strict=True):
            node_dir = workdir / str(port)
            node_dir.mkdir(parents=True)
            self.procs[port] = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-port", str(bus_port), "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                 "--cluster-replica-validity-factor", "0", "--save", "", "--appendonly", "no",
                 "--maxmemory-policy", "noeviction", "--dir", str(node_dir), "--logfile", "redis.log"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        try:
            for port in self.ports:
                _wait(redis.Redis(port=port).ping, f"node {port} answering")
            subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                 "--cluster-replicas", str(replicas), "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, timeout=120,
            )
            _wait(lambda: all(self._state_ok(p) for p in self.ports), "cluster_state:ok on every node")
            _wait(lambda: all(self._synced(p) for p in self.ports), "every replica in sync with its primary")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def client(self, **options: object) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.alive()[0], **options)

    def alive(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def flush(self) -> None:
        """Empty every primary (between tests)."""
        self.client().flushall(target_nodes=redis.RedisCluster.PRIMARIES)

    def master_of(self, key: str) -> int:
        """Port of the primary that serves ``key``'s slot, as the cluster itself says."""
        client = self.client()
        return int(client.get_node_from_key(key).port)

    def kill_master_of(self, key: str) -> int:
        """SIGKILL the primary of ``key``'s slot; returns its port."""
        port = self.master_of(key)
        # every write so far reached the replica (WAIT), as a failover test assumes
        redis.Redis(port=port).execute_command("WAIT", 1, 30_000)
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait(10)
        return port

    def wait_failover(self, dead_port: int) -> None:
        """Wait until every live node reports cluster_state:ok and none names ``dead_port`` a live primary."""

        def promoted() -> bool:
            return all(self._state_ok(p) and not self._serves(p, dead_port) for p in self.alive())

        _wait(promoted, f"failover of the primary on port {dead_port}", attempts=1200)

    @staticmethod
    def _state_ok(port: int) -> bool:
        return redis.Redis(port=port).execute_command("CLUSTER INFO").get("cluster_state") == "ok"

    @staticmethod
    def _synced(port: int) -> bool:
        info = redis.Redis(port=port).info("replication")
        return info["role"] == "master" or info.get("master_link_status") == "up"

    @staticmethod
    def _serves(port: int, dead_port: int) -> bool:
        """Whether node ``port`` still sees ``dead_port`` as a primary that has not failed."""
        node = redis.Redis(port=port).execute_command("CLUSTER NODES").get(f"127.0.0.1:{dead_port}")
        return node is not None and "master" in node["flags"] and "fail" not in node["flags"]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
