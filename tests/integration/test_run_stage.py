"""jobs/run_stage.py: one process runs a job for many blueprints, each in its own try, the context loaded once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration
FLAKY = '''
import logging
import os
from pathlib import Path

from looper_common.jobrunner import job_parser, setup


def main(argv=None):
    args = job_parser(None).parse_args(argv)
    ctx = setup(args, "flaky")
    if args.blueprint == "promo_offer":
        raise RuntimeError("boom")
    if args.blueprint == "feed_layout":
        raise SystemExit("flaky: feed_layout is not ready")
    if args.blueprint == "watch_minutes":
        logging.getLogger("flaky").error("the training set has 3 rows, fewer than 50")
        return 1
    tried = Path(os.environ["FLAKY_MARK"])
    if args.blueprint == "notification_outcome" and not tried.exists():
        tried.touch()
        raise ConnectionError("Redis is restarting")
    print(args.blueprint, args.run_date, id(ctx), flush=True)
    return 0
'''


def _run(jobs, tmp_path, *args):
    env = {**os.environ, "LOOPER_HOME": str(ROOT), "LOOPER_LAKE_ROOT": str(tmp_path / "lake"),
           "PYTHONPATH": str(ROOT), "FLAKY_MARK": str(tmp_path / "tried")}
    return subprocess.run([sys.executable, str(jobs / "run_stage.py"), *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_one_blueprint_failing_leaves_the_others_running(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    shutil.copy(ROOT / "jobs" / "run_stage.py", jobs)
    (jobs / "flaky.py").write_text(FLAKY)
    outcome = tmp_path / "outcome.json"
    names = "notification_send,promo_offer,feed_layout,watch_minutes,notification_outcome,no_such_blueprint"
    result = _run(jobs, tmp_path, "flaky", "--blueprints", names, "--run-date", "2026-01-02", "--outcome",
                  str(outcome), "--retry-delay", "0")
    assert result.returncode == 1, result.stderr
    printed = [line.split() for line in result.stdout.splitlines()]
    assert [p[:2] for p in printed] == [["notification_send", "2026-01-02"], ["notification_outcome", "2026-01-02"]]
    assert printed[0][2] == printed[1][2]  # one context (settings, blueprints, lake) for every blueprint
    done = json.loads(outcome.read_text())
    assert done["job"] == "flaky" and done["ok"] == ["notification_send", "notification_outcome"]
    # what raised was tried twice (the passing ConnectionError succeeded the second time, boom did not);
    # what exited with an error was tried once, its reason the job's last error line
    assert done["failed"]["promo_offer"] == "RuntimeError: boom" and result.stderr.count("RuntimeError: boom") >= 2
    assert "notification_outcome: attempt 1/2 failed (ConnectionError: Redis is restarting)" in result.stderr
    assert done["failed"]["feed_layout"] == "flaky: feed_layout is not ready"
    assert done["failed"]["watch_minutes"] == "exit code 1: the training set has 3 rows, fewer than 50"
    assert "watch_minutes: flaky 1/2" not in result.stderr and "failed (exit code 1" not in result.stderr  # once
    assert "no_such_blueprint" in done["failed"] and "not in" in done["failed"]["no_such_blueprint"]
    assert set(done["seconds"]) == set(names.split(","))
    # the log names the blueprint on each line of its run, with the traceback of the one that raised
    assert "promo_offer: failed:\nTraceback" in result.stderr
    assert "flaky: 2 blueprint(s) done, 4 failed" in result.stderr


def test_a_bad_command_line_is_refused_with_the_fix(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    shutil.copy(ROOT / "jobs" / "run_stage.py", jobs)
    (jobs / "flaky.py").write_text(FLAKY)
    unknown = _run(jobs, tmp_path, "no_job", "--blueprints", "notification_send", "--run-date", "2026-01-02")
    assert unknown.returncode == 1 and "no job 'no_job'" in unknown.stderr and "known: flaky" in unknown.stderr
    undated = _run(jobs, tmp_path, "flaky", "--blueprints", "notification_send")
    assert undated.returncode == 1 and "--run-date is required for flaky" in undated.stderr
