"""The Redis password reaches Spark's executors through ``spark.executorEnv`` (as on a cluster, where
they do not share the driver's environment), and Spark's REST API shows it redacted (a real JVM in a
child process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from looper_common.contracts.config import load_settings
from looper_common.lake.spark import executor_secrets
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
PASSWORD = "exec-secret-7f3a"

# The JVM is launched after the variable is gone from the driver's environment, so a worker
# sees it only if Spark passed it on; the child prints what it found, never the password.
SESSION = """
import json, os, urllib.request
import pyarrow as pa
from looper_common.contracts.config import load_settings
from looper_common.lake import spark as lake_spark
base = load_settings("local")
conf = {**base.spark.conf, "spark.driver.memory": "1g", "spark.ui.enabled": "true", "spark.ui.port": "0"}
spark_settings = base.spark.model_copy(update={"master": "local[1]", "conf": conf, "connect": None})
settings = base.model_copy(update={"spark": spark_settings})  # its own JVM: the test reads its SparkContext
secrets = lake_spark.executor_secrets(settings)
expected = os.environ.pop(settings.redis.password_env)
lake_spark.executor_secrets = lambda _settings: secrets  # the driver no longer has it
spark = lake_spark.get_spark(settings, "secrets-test")
name = settings.redis.password_env

def seen(batches):
    for batch in batches:
        yield pa.RecordBatch.from_pydict({"ok": [os.environ.get(name) == expected]})

ok = spark.range(1).mapInArrow(seen, "ok boolean").first()["ok"]
app = spark.sparkContext.applicationId
env = urllib.request.urlopen(f"{spark.sparkContext.uiWebUrl}/api/v1/applications/{app}/environment").read().decode()
shown = dict(json.loads(env)["sparkProperties"]).get(f"spark.executorEnv.{name}")
print(json.dumps({"worker_has_it": ok, "shown": shown, "in_api": expected in env}))
spark.stop()
"""


def test_the_executors_get_the_password_and_spark_shows_it_redacted():
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_LOCAL_IP", "PYSPARK_GATEWAY_PORT")}
    env.update(PYTHONPATH=str(ROOT), LOOPER_HOME=str(ROOT), LOOPER_REDIS_PASSWORD=PASSWORD)
    out = subprocess.run([sys.executable, "-c", SESSION], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:].replace(PASSWORD, "<password>")
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"worker_has_it": True, "shown": "*********(redacted)", "in_api": False}
    assert PASSWORD not in out.stdout + out.stderr


def test_no_password_no_executor_env_and_an_odd_variable_name_is_added_to_the_redaction(monkeypatch):
    base = load_settings("local", ROOT)
    monkeypatch.delenv("LOOPER_REDIS_PASSWORD", raising=False)
    assert executor_secrets(base) == {}
    monkeypatch.setenv("LOOPER_REDIS_PASSWORD", PASSWORD)
    assert executor_secrets(base) == {"spark.executorEnv.LOOPER_REDIS_PASSWORD": PASSWORD}
    odd = base.model_copy(update={"redis": base.redis.model_copy(update={"password_env": "REDIS_AUTH"})})
    monkeypatch.setenv("REDIS_AUTH", PASSWORD)
    assert executor_secrets(odd) == {
        "spark.executorEnv.REDIS_AUTH": PASSWORD,
        "spark.redaction.regex": "(?i)secret|password|token|access[.]?key|REDIS_AUTH",
    }
