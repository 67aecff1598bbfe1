"""The Open Bandit Dataset's sample through ``scripts/obd_sample.py``, ``looper import-logs`` and
``looper evaluate-policy`` (docs/import-logs.md), on the checked-in 200-row slice (tests/data/README.md).

Real redis-server, a Delta lake in a temporary folder, Spark for the join; the blueprint
is docs/examples/obd/obd_random.yaml (80 items), found through LOOPER_BLUEPRINTS_DIR.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from looper_common import cli
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE, SILVER_EXAMPLES
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
SLICE = ROOT / "tests" / "data" / "obd_random_200.csv"
BP = "obd_random"


@pytest.fixture
def stores(tmp_path, redis_url, redis_client, monkeypatch):
    monkeypatch.setenv("LOOPER_HOME", str(ROOT))
    monkeypatch.setenv("LOOPER_BLUEPRINTS_DIR", str(ROOT / "docs" / "examples" / "obd"))
    monkeypatch.setenv("LOOPER_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("LOOPER_REDIS_URL", redis_url)
    monkeypatch.setenv("LOOPER_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("LOOPER_MLFLOW_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    return Lake(str(tmp_path / "lake"))


def test_the_conversion_refuses_a_file_of_other_columns(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "obd_sample.py"), "--source", str(other),
                           "--out", str(tmp_path / "out.csv")], capture_output=True, text=True)
    assert done.returncode == 1 and "missing ['click', 'item_id'" in done.stderr


def test_obd_slice_imports_and_a_policy_is_evaluated(tmp_path, stores, capsys):
    logs = tmp_path / "obd.csv"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "obd_sample.py"), "--source", str(SLICE),
                    "--out", str(logs)], check=True)
    source = list(csv.DictReader(SLICE.open()))
    rows = list(csv.DictReader(logs.open()))
    assert len(rows) == len(source) == 200
    assert rows[0]["action"] == f"item_{source[0]['item_id']}" and rows[0]["propensity"] == "0.0125"
    clicks = sum(r["click"] == "1" for r in source)
    assert clicks == sum(r["obs_click"] == "1" for r in rows) == 7

    assert cli.main(["import-logs", "--blueprint", BP, "--join", str(logs)]) == 0
    out = capsys.readouterr().out
    assert "200 new decisions, 7 new observations, 0 quarantined" in out
    decisions = stores.read(BRONZE_DECISIONS).table
    assert sorted(decisions["decision_id"].to_pylist()) == sorted(r["decision_id"] for r in rows)
    assert set(decisions["propensity"].to_pylist()) == {0.0125}
    assert stores.read(BRONZE_OBSERVATIONS).table.num_rows == 7
    assert stores.read(QUARANTINE).table.num_rows == 0
    examples = stores.read(SILVER_EXAMPLES).table.to_pandas()
    assert len(examples) == 200 and int((examples["value"] > 0).sum()) == 7

    # the candidate: always the most clicked item of the slice; IPS = clicks on it / 0.0125 / n
    best = max({r["action"] for r in rows}, key=lambda a: (sum(r["action"] == a and r["obs_click"] == "1"
                                                                 for r in rows), a))
    candidate = tmp_path / "always_best.csv"
    candidate.write_text("decision_id,action\n" + "".join(f"{r['decision_id']},{best}\n" for r in rows))
    assert cli.main(["evaluate-policy", "--blueprint", BP, "--policy", str(candidate), "--bootstrap", "50",
                     "--report", str(tmp_path / "report.html")]) == 0
    lines = {tuple(x.split()[:2]): x.split() for x in capsys.readouterr().out.splitlines() if x.startswith("  ")}
    assert float(lines["logged", "ips"][2]) == pytest.approx(clicks / 200, abs=1e-4)  # uniform logging: the click rate
    hits = sum(r["action"] == best and r["obs_click"] == "1" for r in rows)
    assert float(lines["candidate", "ips"][2]) == pytest.approx(hits / 0.0125 / 200, abs=1e-4)
