"""Settings: environment selection, overrides, secrets from the environment only."""

from __future__ import annotations

from pathlib import Path

import pytest

from looper_common.contracts.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "local.yaml").write_text(
        "lake_root: var/lake\nredis: {url: 'redis://127.0.0.1:1/0'}\n"
        "mlflow: {tracking_uri: 'sqlite:///var/mlflow/mlflow.db'}\n"
    )
    monkeypatch.setenv("LOOPER_HOME", str(tmp_path))
    for var in ("LOOPER_ENV", "LOOPER_LAKE_ROOT", "LOOPER_REDIS_URL", "LOOPER_REDIS_PASSWORD",
                "LOOPER_MLFLOW_TRACKING_URI", "LOOPER_SPARK_MASTER", "LOOPER_BLUEPRINTS_DIR", "LOOPER_PYTHON"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_local_paths_resolve_against_home(home: Path):
    settings = load_settings()
    assert settings.env == "local"
    assert settings.lake_root == str(home / "var" / "lake")
    assert settings.mlflow.tracking_uri == f"sqlite:///{home}/var/mlflow/mlflow.db"
    assert settings.redis.password is None


def test_env_var_picks_the_file_and_overrides_win(home: Path, monkeypatch: pytest.MonkeyPatch):
    (home / "conf" / "cluster.yaml").write_text("lake_root: s3a://bucket/lake\nspark: {master: yarn}\n")
    monkeypatch.setenv("LOOPER_ENV", "cluster")
    monkeypatch.setenv("LOOPER_REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("LOOPER_REDIS_PASSWORD", "s3cret")
    settings = load_settings()
    assert (settings.env, settings.lake_root, settings.spark.master) == ("cluster", "s3a://bucket/lake", "yarn")
    assert settings.redis.url == "redis://cache:6379/1"
    assert settings.redis.password == "s3cret"


def test_unknown_field_names_file_and_field(home: Path):
    (home / "conf" / "local.yaml").write_text("redis: {urll: x}\n")
    with pytest.raises(ConfigError, match=r"local\.yaml: redis\.urll: Extra inputs are not permitted"):
        load_settings()


def test_missing_environment_file(home: Path):
    with pytest.raises(ConfigError, match="no settings for environment 'staging'"):
        load_settings("staging")


def test_how_tasks_run_jobs_defaults_to_the_project(home: Path):
    settings = load_settings()  # the file has no jobs section and no spark.python
    assert settings.jobs.dir == str(home / "jobs")
    assert settings.jobs.python == str(home / ".venv" / "bin" / "python")
    assert settings.spark.python == f"{home}/scripts/spark-python"


def test_job_python_is_a_path_under_home_a_name_on_path_or_the_override(home: Path, monkeypatch: pytest.MonkeyPatch):
    (home / "conf" / "bare.yaml").write_text(
        "jobs: {dir: /opt/looper/jobs, python: python3}\nspark: {python: ./environment/bin/python}\n"
    )
    settings = load_settings("bare")
    assert (settings.jobs.dir, settings.jobs.python) == ("/opt/looper/jobs", "python3")
    assert settings.spark.python == "./environment/bin/python"  # as Spark's nodes see it: left alone
    monkeypatch.setenv("LOOPER_PYTHON", "/usr/local/bin/python3.12")
    assert load_settings("bare").jobs.python == "/usr/local/bin/python3.12"


def test_unknown_jobs_field_is_rejected(home: Path):
    (home / "conf" / "local.yaml").write_text("jobs: {interpreter: python3}\n")
    with pytest.raises(ConfigError, match=r"local\.yaml: jobs\.interpreter: Extra inputs are not permitted"):
        load_settings()


@pytest.mark.parametrize("env", ["local", "cluster.example", "cluster-local"])
def test_shipped_settings_load(env: str, home: Path):
    settings = load_settings(env, home=ROOT)  # an explicit home wins over $LOOPER_HOME
    assert settings.home == str(ROOT)
    assert settings.jobs.python.endswith("/bin/python") and settings.spark.python
    if env == "local":
        assert settings.jobs.dir == str(ROOT / "jobs")
        assert settings.spark.python == f"{ROOT}/scripts/spark-python"


# where conf/cluster.example.yaml may differ from conf/cluster-local.yaml: hosts (URLs) only
HOST_FIELDS = {
    ("lake_storage_options", "AWS_ENDPOINT_URL"), ("redis", "url"), ("mlflow", "tracking_uri"), ("spark", "master"),
    ("spark", "conf", "spark.driver.bindAddress"), ("spark", "conf", "spark.driver.host"),
    ("spark", "conf", "spark.hadoop.fs.s3a.endpoint"),
}


def _leaves(data: dict, path: tuple = ()) -> dict:
    out = {}
    for key, value in data.items():
        out.update(_leaves(value, (*path, key)) if isinstance(value, dict) else {(*path, key): value})
    return out


def test_cluster_example_differs_from_the_box_only_in_hosts():
    import yaml

    box = _leaves(yaml.safe_load((ROOT / "conf" / "cluster-local.yaml").read_text()))
    example = _leaves(yaml.safe_load((ROOT / "conf" / "cluster.example.yaml").read_text()))
    assert box.keys() == example.keys()
    differing = {path for path in box if box[path] != example[path]}
    assert differing and differing <= HOST_FIELDS, differing - HOST_FIELDS
