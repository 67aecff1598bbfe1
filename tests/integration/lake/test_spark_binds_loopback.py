"""A Spark session built by ``get_spark`` with ``SPARK_LOCAL_IP`` unset (a job run by hand) listens
on 127.0.0.1 only: driver RPC, block manager and UI (a real JVM in a child process)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys

import pytest

from looper_common.lake.connect_server import CONNECT_CLIENT_VARS
from looper_common.lake.spark import loopback_conf
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.integration

SESSION = """
import json, sys, psutil
from looper_common.contracts.config import load_settings
from looper_common.lake import connect_server
from looper_common.lake.spark import get_spark
base = load_settings("local")
conf = {**base.spark.conf, "spark.driver.memory": "1g", "spark.ui.enabled": "true", "spark.ui.port": "0"}
spark_settings = base.spark.model_copy(update={"master": "local[1]", "conf": conf, "connect": sys.argv[1] or None})
settings = base.model_copy(update={"spark": spark_settings})
spark = get_spark(settings, "bind-test")
spark.range(10).count()
if settings.spark.connect:  # the server this session started, detached: its pid is in its state folder
    folder = connect_server.state_dir(settings, connect_server.ConnectAddress.parse(settings.spark.connect))
    processes = [psutil.Process(int((folder / "server.pid").read_text()))]
else:
    processes = psutil.Process().children(recursive=True)
listening = [c.laddr[:2] for p in processes for q in [p, *p.children(recursive=True)]
             for c in q.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
print(json.dumps({"listening": listening, "bind": spark.conf.get("spark.driver.bindAddress"),
                  "host": spark.conf.get("spark.driver.host")}))
spark.stop()
if settings.spark.connect:
    connect_server.stop(settings)
"""


@pytest.mark.parametrize("connect", ["", "connect"], ids=["own-session", "spark-connect-server"])
def test_a_session_built_by_hand_listens_on_loopback_only(connect):
    """Its own JVM, or the Spark Connect server it starts: driver RPC, block manager, UI (and gRPC)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPARK_LOCAL_IP", "PYSPARK_GATEWAY_PORT", *CONNECT_CLIENT_VARS)}
    env.update(PYTHONPATH=str(ROOT), LOOPER_HOME=str(ROOT))
    address = f"sc://127.0.0.1:{free_port()}" if connect else ""
    out = subprocess.run([sys.executable, "-c", SESSION, address], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["bind"] == found["host"] == "127.0.0.1"
    assert len(found["listening"]) >= 2 + bool(connect), found  # driver RPC, block manager (UI, gRPC)
    addresses = {ipaddress.ip_address(address) for address, _ in found["listening"]}
    # Java reports an IPv4 socket as IPv4-mapped IPv6 (::ffff:127.0.0.1)
    assert {str(getattr(a, "ipv4_mapped", None) or a) for a in addresses} == {"127.0.0.1"}, found


def test_a_cluster_master_or_an_explicit_spark_local_ip_keeps_sparks_choice(monkeypatch):
    monkeypatch.delenv("SPARK_LOCAL_IP", raising=False)
    assert loopback_conf("local[*]") == {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}
    assert loopback_conf("spark://spark-master:7077") == {}
    monkeypatch.setenv("SPARK_LOCAL_IP", "10.0.0.5")
    assert loopback_conf("local[*]") == {}
