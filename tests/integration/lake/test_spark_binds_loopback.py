"""A Spark session built by ``get_spark`` with ``SPARK_LOCAL_IP`` unset (a job run by hand) listens
on 127.0.0.1 only: driver RPC, block manager and UI (a real JVM in a child process)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys

import pytest

from looper_common.lake.spark import loopback_conf
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

SESSION = """
import json, psutil
from looper_common.contracts.config import load_settings
from looper_common.lake.spark import get_spark
base = load_settings("local")
conf = {**base.spark.conf, "spark.driver.memory": "1g", "spark.ui.enabled": "true", "spark.ui.port": "0"}
settings = base.model_copy(update={"spark": base.spark.model_copy(update={"master": "local[1]", "conf": conf})})
spark = get_spark(settings, "bind-test")
spark.range(10).count()
listening = [c.laddr[:2] for p in psutil.Process().children(recursive=True)
             for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
print(json.dumps({"listening": listening, "bind": spark.conf.get("spark.driver.bindAddress"),
                  "host": spark.conf.get("spark.driver.host")}))
spark.stop()
"""


def test_a_session_built_by_hand_listens_on_loopback_only():
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_LOCAL_IP", "PYSPARK_GATEWAY_PORT")}
    env.update(PYTHONPATH=str(ROOT), LOOPER_HOME=str(ROOT))
    out = subprocess.run([sys.executable, "-c", SESSION], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["bind"] == found["host"] == "127.0.0.1"
    assert len(found["listening"]) >= 2, found  # at least the driver's RPC and block manager (and the UI)
    addresses = {ipaddress.ip_address(address) for address, _ in found["listening"]}
    # Java reports an IPv4 socket as IPv4-mapped IPv6 (::ffff:127.0.0.1)
    assert {str(getattr(a, "ipv4_mapped", None) or a) for a in addresses} == {"127.0.0.1"}, found


def test_a_cluster_master_or_an_explicit_spark_local_ip_keeps_sparks_choice(monkeypatch):
    monkeypatch.delenv("SPARK_LOCAL_IP", raising=False)
    assert loopback_conf("local[*]") == {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}
    assert loopback_conf("spark://spark-master:7077") == {}
    monkeypatch.setenv("SPARK_LOCAL_IP", "10.0.0.5")
    assert loopback_conf("local[*]") == {}
