"""``validate_training_set`` (Great Expectations on pandas): good data passes, bad data is named,
the same whether the lake reads the examples with delta-rs or with Spark."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from looper_common.lake.engine import Lake
from looper_common.lake.tables import SILVER_EXAMPLES
from looper_common.validation.training_set import validate_training_set
from tests.conftest import ROOT, make_blueprint

pytestmark = pytest.mark.integration
RUN_DATE = date(2026, 3, 10)
COUNTRIES = ["de", "fr", "us"]
BLUEPRINT = make_blueprint(features=[
    {"name": "recency", "type": "float"},
    {"name": "visits", "type": "int"},
    {"name": "opted_in", "type": "bool"},
    {"name": "country", "type": "category", "values": COUNTRIES},
])
PER_DAY = 40


def decision(i: int, day: date, **changes: object) -> dict:
    """One good decision of ``day`` (ts between 10:00 and 10:39), with ``changes`` applied."""
    row = {
        "decision_id": f"{day:%m%d}-{i:03d}", "unit_id": f"u{i}",
        "ts": datetime(day.year, day.month, day.day, 10, i % 40, tzinfo=UTC),
        "recency": 0.5 + i % 10, "visits": i % 20, "opted_in": i % 2 == 0,
        "country": COUNTRIES[i % 3],
        "action": "send" if i % 2 else "skip", "propensity": 0.5,
        "clicked": float(i % 2), "clicks": float(i % 3), "revenue": float(i), "best": 1.0,
        "last_rating": -1.0,
    }
    row.update(changes)
    return row


def silver_rows(decisions: list[dict], matured: date) -> pa.Table:
    """The decisions as silver examples (one row per label; a label set to None has no row)."""
    rows = []
    for d in decisions:
        features = {f.name: str(d[f.name]).lower() for f in BLUEPRINT.features}
        for label in BLUEPRINT.labels:
            if d[label.name] is None:
                continue
            rows.append({
                "decision_id": d["decision_id"], "label": label.name, "value": d[label.name],
                "n_observations": 1, "first_feedback_s": None, "blueprint": BLUEPRINT.name,
                "blueprint_version": BLUEPRINT.version, "unit_id": d["unit_id"], "ts": d["ts"],
                "features": features, "action": d["action"], "propensity": d["propensity"],
                "action_probs": {"send": 0.5, "skip": 0.5}, "scores": None, "policy_version": None,
                "is_default": False, "date": matured,
            })
    return pa.Table.from_pylist(rows, schema=SILVER_EXAMPLES.schema)


def write_day(lake: Lake, day: date, decisions: list[dict]) -> None:
    lake.replace_partition(SILVER_EXAMPLES, silver_rows(decisions, day), {"blueprint": BLUEPRINT.name, "date": day})


def good_day(day: date) -> list[dict]:
    return [decision(i, day) for i in range(PER_DAY)]


@pytest.fixture
def history_lake(tmp_path) -> Lake:
    """A lake (delta-rs only: no Spark) with one good day of examples before the run date."""
    lake = Lake(str(tmp_path / "validation_lake"))
    write_day(lake, RUN_DATE - timedelta(days=1), good_day(RUN_DATE - timedelta(days=1)))
    return lake


def test_good_training_set_passes_and_writes_result_and_docs(history_lake, tmp_path):
    write_day(history_lake, RUN_DATE, good_day(RUN_DATE))
    out = tmp_path / "validation"
    (out / "data_docs" / "validations").mkdir(parents=True)
    (out / "data_docs" / "validations" / "stale.html").write_text("old run")

    report = validate_training_set(history_lake, BLUEPRINT, RUN_DATE, min_rows=50, output_dir=out)

    assert report.success, report.message
    assert report.failed == [] and report.rows == 2 * PER_DAY
    result = json.loads(Path(report.result_path).read_text())
    assert result["success"] is True
    assert result["suite_name"] == "t_notify.training_set"
    checked = {(r["expectation_config"]["type"], r["expectation_config"]["kwargs"].get("column"))
               for r in result["results"]}
    assert ("expect_column_values_to_be_in_set", "country") in checked
    assert ("expect_column_values_to_be_between", "recency") in checked  # learned from history
    assert ("expect_column_max_to_be_between", "ts") in checked
    assert Path(report.data_docs_path).is_file()
    pages = list((out / "data_docs" / "validations").rglob("*.html"))
    assert len(pages) == 1 and "stale" not in pages[0].name
    assert not (ROOT / "gx").exists()

    newest_day = validate_training_set(
        history_lake, BLUEPRINT, RUN_DATE, min_rows=10, output_dir=out, lookback_days=1
    )
    assert newest_day.success and newest_day.rows == PER_DAY
    assert len(list((out / "data_docs" / "validations").rglob("*.html"))) == 1  # rerun replaces


DEFECTS = {  # decision index -> changes, each breaking one expectation
    1: {"country": "xx"}, 2: {"country": "xx"}, 4: {"country": "zz"},
    3: {"propensity": 0.0}, 5: {"propensity": 1.5},
    7: {"clicks": None},  # no silver row for this label
    8: {"clicked": 2.0},
    9: {"recency": 1000.0},
}
EXPECTED_FAILURES = {
    "expect_column_values_to_be_in_set(country): 3 unexpected value(s) ['xx', 'zz']",
    "expect_column_values_to_be_between(propensity): 2 value(s) outside (0.0, 1.0], e.g. [0.0, 1.5",
    "expect_column_values_to_not_be_null(clicks): 1 null value(s)",
    "expect_column_values_to_be_in_set(clicked): 1 unexpected value(s) [2.0] not in [0.0, 1.0]",
    # history: recency 0.5..9.5, widened by half its width on each side
    "expect_column_values_to_be_between(recency): 1 value(s) outside [-4.0, 14.0], e.g. [1000.0]",
}


def _failures(report) -> list[tuple[str, str | None, str]]:
    return sorted((f.expectation, f.column, str(f)) for f in report.failed)


def test_bad_training_set_fails_naming_each_expectation_and_column(spark, history_lake, tmp_path):
    bad_day = [decision(i, RUN_DATE, **DEFECTS.get(i, {})) for i in range(PER_DAY)]
    write_day(history_lake, RUN_DATE, bad_day)

    report = validate_training_set(history_lake, BLUEPRINT, RUN_DATE, min_rows=50, output_dir=tmp_path / "a")

    assert not report.success
    assert report.message.startswith("validate_training_set: 5 expectation(s) failed: ")
    for expected in EXPECTED_FAILURES:
        assert expected in report.message
    assert {(f.expectation, f.column) for f in report.failed} == {
        ("expect_column_values_to_be_in_set", "country"),
        ("expect_column_values_to_be_between", "propensity"),
        ("expect_column_values_to_not_be_null", "clicks"),
        ("expect_column_values_to_be_in_set", "clicked"),
        ("expect_column_values_to_be_between", "recency"),
    }
    assert json.loads(Path(report.result_path).read_text())["success"] is False
    # read by Spark (as a lake too big for delta-rs is), the same examples give the same report
    on_spark = dataclasses.replace(history_lake, local_read_max_bytes=0, spark=lambda: spark)
    again = validate_training_set(on_spark, BLUEPRINT, RUN_DATE, min_rows=50, output_dir=tmp_path / "b")
    assert (again.success, again.rows, _failures(again)) == (False, report.rows, _failures(report))


def _job_home(tmp_path: Path, lake: Lake) -> Path:
    """A project home with the test blueprint and settings pointing at ``lake``."""
    home = tmp_path / "home"
    (home / "conf").mkdir(parents=True)
    (home / "blueprints").mkdir()
    blueprint = yaml.safe_dump(BLUEPRINT.model_dump(mode="json"))
    (home / "blueprints" / f"{BLUEPRINT.name}.yaml").write_text(blueprint)
    settings = {"lake_root": lake.root, "spark": {"jars_dir": str(ROOT / ".jars")}}
    (home / "conf" / "local.yaml").write_text(yaml.safe_dump(settings))
    return home


JOB_THEN_CHILDREN = """
import os, sys
from jobs.validate_training_set import main
code = main(sys.argv[1:])
def parent(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return int(next(line for line in status if line.startswith("PPid:")).split()[1])
    except OSError:
        return None
print("child processes:", [p for p in os.listdir("/proc") if p.isdigit() and parent(p) == os.getpid()])
raise SystemExit(code)
"""


def test_job_passes_then_stops_on_stale_and_too_few_rows(history_lake, tmp_path, monkeypatch, capsys):
    from jobs.validate_training_set import main

    write_day(history_lake, RUN_DATE, good_day(RUN_DATE))
    home = _job_home(tmp_path, history_lake)
    monkeypatch.setenv("LOOPER_HOME", str(home))
    out = home / "var" / "validation" / BLUEPRINT.name / RUN_DATE.isoformat()

    # as Airflow runs it, a process of its own: on a small lake it starts no JVM (no child process)
    job = subprocess.run(
        [sys.executable, "-c", JOB_THEN_CHILDREN, "--blueprint", BLUEPRINT.name, "--run-date", RUN_DATE.isoformat()],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
    )
    assert job.returncode == 0, job.stderr
    assert f"validation result: {out / 'validation_result.json'}" in job.stdout
    assert job.stdout.splitlines()[-1] == "child processes: []"
    assert json.loads((out / "validation_result.json").read_text())["success"] is True

    later = RUN_DATE + timedelta(days=5)  # nothing matured since RUN_DATE
    args = ["--blueprint", BLUEPRINT.name, "--run-date", later.isoformat(), "--min-rows", "1000"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "validate_training_set: 2 expectation(s) failed: " in captured.err
    assert f"expect_table_row_count_to_be_between: {2 * PER_DAY} rows < 1000" in captured.err
    # end of the 15th - 2h (longest window) - 2 days of slack
    assert ("expect_column_max_to_be_between(ts): newest value 2026-03-10 10:39:00 "
            "is older than 2026-03-13 22:00:00") in captured.err
    later_out = out.parent / later.isoformat()
    assert f"data docs: {later_out / 'data_docs' / 'index.html'}" in captured.out
    assert (later_out / "data_docs" / "index.html").is_file()
    assert (later_out / "validation_result.json").is_file()
