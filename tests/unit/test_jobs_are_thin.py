"""Every job is a thin entry point: it parses arguments, sets up, and makes one call into its stage package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JOBS = sorted((ROOT / "jobs").glob("*.py"))
MAX_LINES = 45
SHARED = {"job_parser", "setup"}
# Finding the streams to drain stays in the job until looper_common.ingest, whose API is
# changing to take the lake, offers the one call.
ALSO_CALLED = {"ingest_events": {"event_streams", "record_watermarks"}}  # the watermark: ingest/watermark.py


def _looper_names(tree: ast.Module) -> set[str]:
    """Names bound by ``from looper_common... import`` or ``import looper_common...`` anywhere in the file."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "looper_common":
            names |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.asname or alias.name.split(".")[0]
                      for alias in node.names if alias.name.split(".")[0] == "looper_common"}
    return names


def _called(function: ast.FunctionDef, names: set[str]) -> list[str]:
    """The looper_common functions ``function`` calls, by name (a module's attribute as ``module.name``)."""
    calls = []
    for node in ast.walk(function):
        if not isinstance(node, ast.Call):
            continue
        target = node.func
        if isinstance(target, ast.Name) and target.id in names:
            calls.append(target.id)
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id in names:
            calls.append(f"{target.value.id}.{target.attr}")
    return calls


def test_every_job_is_checked():
    assert {path.stem for path in JOBS} >= {
        "ingest_events", "join_feedback", "validate_training_set", "train_models",
        "evaluate_models", "tune_policy", "publish_policies",
    }


@pytest.mark.parametrize("path", JOBS, ids=lambda path: path.stem)
def test_job_is_short(path: Path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; move the logic into its stage package"


@pytest.mark.parametrize("path", JOBS, ids=lambda path: path.stem)
def test_main_makes_one_call_into_its_stage(path: Path):
    tree = ast.parse(path.read_text())
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    assert [f.name for f in functions] == ["main"], f"{path.name} defines helpers; they belong in looper_common"
    calls = _called(functions[0], _looper_names(tree))
    assert sorted(c for c in calls if c in SHARED) == ["job_parser", "setup"]
    stage_calls = [c for c in calls if c not in SHARED and c not in ALSO_CALLED.get(path.stem, set())]
    # the one call is the function of the job's own name, e.g. train_models(...) in train_models.py
    assert stage_calls == [path.stem], f"{path.name} main() calls {stage_calls}"


def test_the_check_sees_a_fat_job():
    fat = ast.parse(
        "from looper_common.jobrunner import job_parser, setup\n"
        "from looper_common.training import registry, train_models\n"
        "def main(argv=None):\n"
        "    ctx = setup(job_parser(__doc__).parse_args(argv), 'train_models')\n"
        "    registry.move_alias(ctx.lake)\n"
        "    return train_models(ctx)\n"
    )
    calls = _called(fat.body[2], _looper_names(fat))
    assert sorted(calls) == ["job_parser", "registry.move_alias", "setup", "train_models"]
