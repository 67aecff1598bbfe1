"""`looper import-logs` then `looper evaluate-policy` on a small randomized-experiment file, end to end.

Real redis-server (conftest), a Delta lake in a temporary folder, Spark for the join,
MLflow on SQLite: the two commands as a data scientist runs them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.csv as pa_csv
import pytest

from looper_common import cli
from looper_common.contracts.blueprint import load_blueprints
from looper_common.contracts.config import load_settings
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE, SILVER_EXAMPLES
from looper_common.simulate.logged_sample import randomized_sample
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
BP = "notification_send"


@pytest.fixture
def stores(tmp_path, redis_url, redis_client, monkeypatch):
    monkeypatch.setenv("LOOPER_HOME", str(ROOT))
    monkeypatch.setenv("LOOPER_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("LOOPER_REDIS_URL", redis_url)
    monkeypatch.setenv("LOOPER_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("LOOPER_MLFLOW_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    return Lake(str(tmp_path / "lake"))


def _sample(tmp_path: Path) -> Path:
    blueprint = load_blueprints(load_settings().blueprints_dir)[BP]
    path = tmp_path / "logs.csv"
    from datetime import date

    pa_csv.write_csv(randomized_sample(blueprint, users=150, days=2, start=date(2026, 1, 1), seed=1), path)
    rows = list(csv.DictReader(path.open()))
    bad = [dict(rows[0], decision_id="bad-propensity", propensity="0"),
           dict(rows[1], decision_id="bad-action", action="email"),
           dict(rows[2], decision_id="bad-ts", timestamp="yesterday")]
    with path.open("a", newline="") as out:
        csv.DictWriter(out, fieldnames=list(rows[0])).writerows(bad)
    return path


def test_import_then_evaluate_a_policy(tmp_path, stores, capsys):
    path = _sample(tmp_path)
    assert cli.main(["import-logs", "--blueprint", BP, "--join", str(path)]) == 0
    out = capsys.readouterr().out
    assert "303 rows" in out and "300 new decisions" in out and "3 quarantined" in out

    decisions = stores.read(BRONZE_DECISIONS).table
    assert decisions.num_rows == 300
    assert set(decisions["propensity"].to_pylist()) == {0.5}
    assert set(decisions["policy_version"].to_pylist()) == {"import:logs.csv"}
    quarantine = {r["event_id"]: r["reason"] for r in stores.read(QUARANTINE).table.to_pylist()}
    assert "propensity" in quarantine["bad-propensity"]
    assert "action" in quarantine["bad-action"] and "email" in quarantine["bad-action"]
    assert "ts" in quarantine["bad-ts"]
    observations = stores.read(BRONZE_OBSERVATIONS).table.num_rows
    assert observations > 0

    assert cli.main(["import-logs", "--blueprint", BP, str(path)]) == 0  # again: nothing new
    assert "0 new decisions, 0 new observations" in capsys.readouterr().out
    assert stores.read(BRONZE_DECISIONS).table.num_rows == 300
    assert stores.read(BRONZE_OBSERVATIONS).table.num_rows == observations

    examples = stores.read(SILVER_EXAMPLES, filters=[("label", "=", "clicked")]).table.to_pandas()
    assert len(examples) == 300

    candidate = tmp_path / "always_send.csv"
    ids = decisions["decision_id"].to_pylist()
    candidate.write_text("decision_id,action\n" + "".join(f"{i},send\n" for i in ids))
    report = tmp_path / "report.html"
    assert cli.main(["evaluate-policy", "--blueprint", BP, "--policy", str(candidate), "--bootstrap", "50",
                     "--report", str(report)]) == 0
    out = capsys.readouterr().out
    clicked = (examples["value"] > 0).to_numpy(dtype=float)
    sent = (examples["action"] == "send").to_numpy()
    ips = float(np.sum(clicked * sent / 0.5) / len(examples))
    line = next(x for x in out.splitlines() if x.split()[:2] == ["candidate", "ips"])
    assert float(line.split()[2]) == pytest.approx(ips, abs=1e-4)
    assert "dr" not in {x.split()[1] for x in out.splitlines() if x.startswith("  ")}  # no reward model yet
    assert "always_send.csv" in report.read_text() and "snips" in report.read_text()


def test_a_file_without_required_columns_is_refused_naming_them(tmp_path, stores, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("unit,timestamp,action\nu1,2026-01-01T00:00:00+00:00,send\n")
    assert cli.main(["import-logs", "--blueprint", BP, str(path)]) == 2
    err = capsys.readouterr().err
    assert "missing column(s) propensity, features (JSON) or feature_<name> columns" in err
    assert cli.main(["import-logs", "--blueprint", "nope", str(path)]) == 2
    assert "--blueprint 'nope' not found" in capsys.readouterr().err


def test_evaluate_policy_without_logged_decisions_says_so(tmp_path, stores, capsys):
    assert cli.main(["evaluate-policy", "--blueprint", BP, "--policy", "model"]) == 1
    assert "no matured decisions in silver/examples" in capsys.readouterr().err
