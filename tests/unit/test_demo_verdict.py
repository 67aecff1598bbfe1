"""scripts/demo.py says at the end whether the pass line was met and why not; --help explains every option."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import pytest

from looper_common.dag_runs import promotion_outcome
from tests.conftest import ROOT


def _demo():
    spec = importlib.util.spec_from_file_location("looper_demo", ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = _demo()


def test_met_line_says_met():
    met, sentence = demo.verdict(7, 0.83, 0.9, 0.78, (95, 95))
    assert met and sentence.startswith("pass line met") and "83%" in sentence and "78% on average" in sentence
    assert "all 95 units first seen on day 6 got a model decision" in sentence


def test_a_good_last_day_after_poor_first_days_is_not_met():
    met, sentence = demo.verdict(7, 0.89, 1.0, 0.61, (95, 95))
    assert not met and "89% of the gap on the last day but 61% on average over days 2-7 (< 75%)" in sentence


def test_new_units_served_the_default_is_not_met():
    met, sentence = demo.verdict(7, 0.89, 1.0, 0.8, (95, 0))
    assert not met and "of 95 units first seen on day 6, only 0 got a model decision" in sentence


@pytest.mark.parametrize(("days", "share", "why"), [
    (1, 0.0, "first served on day 2"),
    (2, 0.0, "no published policy was served"),
    (2, 0.9, "1 day(s) of matured feedback"),
    (7, 0.9, "varies with exploration"),
])
def test_unmet_line_says_why(days, share, why):
    met, sentence = demo.verdict(days, 0.2, share)
    assert not met
    assert sentence.startswith("pass line NOT met: the served policy closed 20% of the gap (< 80%)")
    assert why in sentence


def test_no_policy_on_the_last_day_says_what_evaluate_models_decided(tmp_path):
    log = tmp_path / "notification_send-2026-01-01.log"
    log.write_text(
        "2026-12-03T17:13:46.81Z [info     ] 2026-12-03 17:13:46,813 evaluate_models INFO done: notification_send "
        "on 2026-01-01, 198 held-out decisions: looper.notification_send.clicked: kept (log_loss 0.0893 does not "
        "beat the constant baseline 0.0785) [airflow.task.hooks.airflow.providers.standard.hooks.subprocess."
        "SubprocessHook] loc=subprocess.py:106\n")
    promotion = promotion_outcome(log)
    assert promotion.endswith("kept (log_loss 0.0893 does not beat the constant baseline 0.0785)")
    met, sentence = demo.verdict(2, 0.08, 0.0, promotion=promotion)
    assert not met
    assert "evaluate_models kept the default (notification_send on 2026-01-01" in sentence
    assert "a 2-day run can end on the default: use more --days" in sentence
    assert promotion_outcome(tmp_path / "missing.log") is None


def test_no_gap_is_not_met():
    met, sentence = demo.verdict(3, math.nan, 0.9)
    assert not met and "no gap to close" in sentence


def test_help_explains_every_option_and_exit_status():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    text = " ".join(out.split())
    for option, words in (("--blueprint BLUEPRINT", "blueprint to simulate"), ("--days DAYS", "simulated days"),
                          ("--users USERS", "simulated users"), ("--seed SEED", "seed of the simulated users"),
                          ("--start-date YYYY-MM-DD", "simulated date of day 1")):
        assert f"{option} {words}" in text
    assert "exit status:" in out and "pass line was not met" in out


def test_days_below_one_is_a_usage_error():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--days", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--days: must be at least 1" in result.stderr
