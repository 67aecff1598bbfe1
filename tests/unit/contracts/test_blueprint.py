"""Blueprint loading: the shipped examples, versions, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from looper_common.contracts.blueprint import (
    BlueprintError,
    load_blueprint,
    load_blueprints,
    parse_blueprint,
    parse_duration,
)

ROOT = Path(__file__).resolve().parents[3]
BAD = sorted((Path(__file__).parent / "bad_blueprints").glob("*.yaml"))


def test_shipped_examples_load():
    blueprints = load_blueprints(ROOT / "blueprints")
    assert {"notification_send", "feed_layout"} <= set(blueprints)
    binary, multi = blueprints["notification_send"], blueprints["feed_layout"]
    assert binary.decision.actions == ["send", "skip"] and binary.model.task == "binary"
    assert len(multi.decision.actions) == 4 and multi.policy.type == "argmax"
    assert binary.max_window_seconds == 12 * 3600


def test_version_is_a_content_hash():
    path = ROOT / "blueprints" / "notification_send.yaml"
    data = yaml.safe_load(path.read_text())
    same = parse_blueprint(dict(reversed(list(data.items()))))  # key order does not matter
    assert same.version == load_blueprint(path).version
    assert len(same.version) == 12
    changed = parse_blueprint({**data, "policy": {**data["policy"], "params": {"threshold": 0.6}}})
    assert changed.version != same.version
    explicit_default = parse_blueprint({**data, "promotion": {**data["promotion"], "clip": None}})
    assert explicit_default.version == same.version  # defaults are part of the normalized content


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_blueprint_names_field_and_reason(path: Path):
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    with pytest.raises(BlueprintError) as err:
        load_blueprint(path)
    message = str(err.value)
    assert str(path) in message
    assert expected in message


def test_a_dozen_bad_files_are_covered():
    assert len(BAD) >= 12


def test_folder_reports_every_bad_file(tmp_path: Path):
    for path in BAD[:3]:
        (tmp_path / path.name).write_text(path.read_text())
    with pytest.raises(BlueprintError) as err:
        load_blueprints(tmp_path, strict=True)
    assert all(p.name in str(err.value) for p in BAD[:3])


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("24h", 86400), ("7d", 604800)]
)
def test_parse_duration(text: str, seconds: int):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["0h", "24", "h", "1.5h", "-1d", "3w"])
def test_parse_duration_rejects(text: str):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)
