"""scripts/mlflow.sh (``make mlflow``) with LOOPER_MLFLOW_WEBHOOK_SECRET: the MLflow UI and `looper alias-webhook`
together, the webhook registered, a move in the UI recorded at its time, the secret never shown, both stopped
by Ctrl-C (real ``mlflow ui``, real receiver)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time
import urllib.request
from datetime import UTC, datetime

import mlflow
import pytest
import yaml

from looper_common.lake.engine import Lake
from looper_common.lake.tables import ALIAS_HISTORY
from looper_common.training.alias_webhook import ACTOR
from tests.conftest import ROOT, _free_port, command_lines

pytestmark = pytest.mark.integration
SECRET = "make-mlflow-secret-51c2"
MODEL = "looper.t_notify.clicked"


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(condition, what: str, proc: subprocess.Popen, log) -> None:
    for _ in range(600):
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"scripts/mlflow.sh exited ({proc.returncode}) before {what}: {log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen within 300 s")


def test_make_mlflow_with_a_secret_records_ui_moves_when_made(tmp_path):
    home = tmp_path / "home"
    (home / "conf").mkdir(parents=True)
    (home / "conf" / "local.yaml").write_text(yaml.safe_dump({"lake_root": str(tmp_path / "lake")}))
    store = f"sqlite:///{tmp_path}/mlflow.db"
    ui_port, hook_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOOPER_HOME": str(home), "LOOPER_MLFLOW_TRACKING_URI": store,
           "LOOPER_MLFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts"), "MLFLOW_PORT": str(ui_port),
           "LOOPER_ALIAS_WEBHOOK_PORT": str(hook_port), "LOOPER_ALIAS_WEBHOOK_LOG": str(tmp_path / "hook.log"),
           "LOOPER_MLFLOW_WEBHOOK_KEY_FILE": str(tmp_path / "webhook.key"), "LOOPER_MLFLOW_WEBHOOK_SECRET": SECRET}
    env.pop("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", None)
    log = tmp_path / "mlflow.out"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "mlflow.sh")], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{ui_port}"

        def ui_up() -> bool:
            try:
                return urllib.request.urlopen(f"{url}/health", timeout=2).status == 200
            except OSError:
                return False

        _wait(ui_up, "the UI answered", proc, log)
        assert _answers(hook_port)
        processes = command_lines()
        assert "alias-webhook" in processes and SECRET not in processes
        client, direct = mlflow.MlflowClient(url, url), mlflow.MlflowClient(store, store)
        direct.create_registered_model(MODEL)  # versions as train_models registers them: on the store
        for _ in range(2):
            direct.create_model_version(MODEL, source=str(tmp_path / "artifacts" / "m"))
        lake = Lake(str(tmp_path / "lake"))
        before = datetime.now(UTC)
        client.set_registered_model_alias(MODEL, "champion", "2")  # what the UI's "add alias" calls
        after = datetime.now(UTC)
        _wait(lambda: lake.read(ALIAS_HISTORY).table.num_rows > 0, "the move was recorded", proc, log)
        [row] = lake.read(ALIAS_HISTORY).table.to_pylist()
        assert (row["model"], row["alias"], row["version"], row["actor"]) == (MODEL, "champion", "2", ACTOR)
        assert before <= row["ts"] <= after  # the time MLflow made it, not a later job's
        assert stat.S_IMODE((tmp_path / "webhook.key").stat().st_mode) == 0o600  # the UI's and receiver's key
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    for _ in range(60):  # the receiver is stopped by the script's exit trap
        if not _answers(hook_port) and not _answers(ui_port):
            break
        time.sleep(0.5)
    assert not _answers(hook_port) and not _answers(ui_port)
    for text in (log.read_text(), (tmp_path / "hook.log").read_text()):
        assert SECRET not in text
    assert "listening on" in log.read_text()
