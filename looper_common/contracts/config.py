"""Deploy-time settings: ``conf/<env>.yaml`` loaded into strict pydantic models.

One environment variable (``LOOPER_ENV``, default ``local``) picks the file; a few
variables override single values so tests and containers can redirect stores
without editing YAML. Secrets come only from the environment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from looper_common.contracts import event_rules

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # s3a://..., mlflow-artifacts:/..., file:...
ENV_VAR = "LOOPER_ENV"
HOME_VAR = "LOOPER_HOME"
OVERRIDES = {
    "LOOPER_LAKE_ROOT": ("lake_root",),
    "LOOPER_BLUEPRINTS_DIR": ("blueprints_dir",),
    "LOOPER_REDIS_URL": ("redis", "url"),
    "LOOPER_REDIS_CLUSTER": ("redis", "cluster"),
    "LOOPER_MLFLOW_TRACKING_URI": ("mlflow", "tracking_uri"),
    "LOOPER_MLFLOW_ARTIFACT_ROOT": ("mlflow", "artifact_root"),
    "LOOPER_SPARK_MASTER": ("spark", "master"),
    "LOOPER_SPARK_CONNECT": ("spark", "connect"),
    "LOOPER_PYTHON": ("jobs", "python"),
    "LOOPER_ALERT_WEBHOOK_CONN": ("alerts", "webhook_conn"),
    "LOOPER_ALERT_EMAIL": ("alerts", "email"),
    "LOOPER_ALERT_SMTP_CONN": ("alerts", "smtp_conn"),
    "LOOPER_DAGS_LAYOUT": ("dags", "layout"),
}


# libyaml's safe loader where PyYAML has it (8x faster on 200 blueprints), else the pure-Python one
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(ValueError):
    """A settings file is missing or invalid; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisSettings(_Strict):
    url: str = "redis://127.0.0.1:6390/0"
    # true: url is a node of a Redis Cluster, every client is redis-py's RedisCluster (contracts/redis_conn.py)
    cluster: bool = False
    password_env: str = "LOOPER_REDIS_PASSWORD"
    policy_ttl_days: int = Field(7, ge=1)
    ingest_batch_size: int = Field(200_000, ge=1)

    @property
    def password(self) -> str | None:
        """The Redis password, read from the environment only."""
        return os.environ.get(self.password_env) or None


class IngestSettings(_Strict):
    """Bounds of what ingestion accepts (``contracts.event_rules``) and how far back it looks for an event_id."""

    max_event_bytes: int = Field(event_rules.DEFAULT_LIMITS.max_event_bytes, ge=1)
    ts_max_past_days: int = Field(event_rules.DEFAULT_LIMITS.ts_max_past_days, ge=0)
    ts_max_future_s: int = Field(event_rules.DEFAULT_LIMITS.ts_max_future_s, ge=0)
    duplicate_horizon_days: int = Field(7, ge=0)

    @property
    def limits(self) -> event_rules.EventLimits:
        return event_rules.EventLimits(self.max_event_bytes, self.ts_max_past_days, self.ts_max_future_s)


class MlflowSettings(_Strict):
    tracking_uri: str = "sqlite:///var/mlflow/mlflow.db"
    artifact_root: str = "var/mlflow/artifacts"


class SparkSettings(_Strict):
    master: str = "local[*]"
    jars_dir: str | None = ".jars"
    # the driver's and executors' Python for a spark-submit (spark.pyspark.python and
    # spark.pyspark.driver.python, unless ``conf`` sets them), a path as Spark sees it
    # ({home} expands as in ``conf``); the default script runs ``jobs.python`` with the
    # installed pyspark first
    python: str = "{home}/scripts/spark-python"
    # code the executors import (a zip or wheel of looper_common): spark-submit's --py-files and
    # spark.submit.pyFiles of the jobs' own sessions; {home} expands
    py_files: str | None = None
    # a Spark Connect server (sc://host:port) that the jobs' sessions are clients of, instead of
    # each job starting a JVM; a local one is started on first need (lake/connect_server.py).
    # null (or LOOPER_SPARK_CONNECT=off): each job that needs Spark starts its own session, and
    # join_feedback runs through spark-submit
    connect: str | None = None
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("connect", mode="before")
    @classmethod
    def _connect_off(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in ("", "off", "none", "null") else value


class JobsSettings(_Strict):
    """How Airflow's tasks run the jobs: ``<python> <dir>/<task>.py --blueprint ...``."""

    dir: str = "jobs"
    python: str = ".venv/bin/python"


class AlertSettings(_Strict):
    """Where the monitor task's failures go (``monitoring/notify.py``): Airflow connection ids, never secrets."""

    webhook_conn: str | None = None  # an HTTP connection the failure is POSTed to as JSON
    email: tuple[str, ...] = ()  # recipients, through the SMTP connection smtp_conn
    smtp_conn: str = "smtp_default"

    @field_validator("email", mode="before")
    @classmethod
    def _recipients(cls, value: object) -> object:
        """A comma-separated string (``LOOPER_ALERT_EMAIL=a@x,b@y``) or a YAML list."""
        if isinstance(value, str):
            return tuple(a.strip() for a in value.split(",") if a.strip())
        return () if value is None else value


class TrainingSettings(_Strict):
    """Bounds of what ``train_models`` reads (``training.examples.load_training_frame``)."""

    # Above this many example rows in the lookback window, training reads a sample of the
    # window's decisions of about this size (by the MD5 of the decision id) and says so
    # in its MLflow run (tag ``training.sampled``). The default keeps a few GB on the driver.
    max_examples: int = Field(2_000_000, ge=1)


class DagSettings(_Strict):
    """How the blueprints' Airflow DAGs are scheduled (dags/looper_blueprints.py)."""

    # True: each DAG runs on its blueprint's ``schedule`` (created paused, no catch-up).
    # False: no schedule; a DAG runs only when triggered (UI, ``airflow dags test``), so it
    # is created unpaused and unpausing never starts a run of its own.
    scheduled: bool = True
    # blueprint: one DAG per blueprint (looper_<blueprint>), one process per task.
    # stage: one DAG per schedule (looper_stages_<schedule>) for all the blueprints that share it,
    # one task per stage, each stage one process for all of them (jobs/run_stage.py): the fixed
    # cost of a process (imports, MLflow's store, Airflow's task) is paid once per stage and day,
    # not once per blueprint. A blueprint that fails a stage is left out of its later stages only.
    layout: Literal["blueprint", "stage"] = "blueprint"


class Settings(_Strict):
    env: str = "local"
    home: str = "."
    lake_root: str = "var/lake"
    # delta-rs' storage_options for lake_root (an object store's endpoint, region); keys come from
    # the environment (AWS_ACCESS_KEY_ID, ...), which delta-rs reads itself
    lake_storage_options: dict[str, str] = Field(default_factory=dict)
    blueprints_dir: str = "blueprints"
    # A read whose partitions select up to this much Parquet runs in the job's process on
    # delta-rs; a larger one on Spark (lake/engine.py). 0: every read on Spark.
    local_read_max_mb: int = Field(64, ge=0)
    redis: RedisSettings = RedisSettings()
    ingest: IngestSettings = IngestSettings()
    mlflow: MlflowSettings = MlflowSettings()
    spark: SparkSettings = SparkSettings()
    jobs: JobsSettings = JobsSettings()
    alerts: AlertSettings = AlertSettings()
    training: TrainingSettings = TrainingSettings()
    dags: DagSettings = DagSettings()


def project_home() -> Path:
    """The project root: ``$LOOPER_HOME``, else the nearest parent of cwd holding ``conf/``."""
    if os.environ.get(HOME_VAR):
        return Path(os.environ[HOME_VAR]).resolve()
    for candidate in (Path.cwd(), *Path.cwd().parents):
        if (candidate / "conf" / "local.yaml").is_file():
            return candidate
    return Path(__file__).resolve().parent.parent


def _absolute(home: Path, value: str | None) -> str | None:
    """Resolve a relative local path against the project home; leave URIs alone."""
    if value is None or _URI.match(value) or value.startswith("/"):
        return value
    return str(home / value)


def _command(home: Path, value: str) -> str:
    """A program's relative path (``.venv/bin/python``) resolves against the project home;
    a bare name (``python3``) stays a name for ``PATH`` to find."""
    return value if "/" not in value else str(home / value)


def _set(data: dict, path: tuple[str, ...], value: str) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value


def load_settings(env: str | None = None, home: Path | str | None = None) -> Settings:
    """Load ``conf/<env>.yaml`` (env from the argument, ``$LOOPER_ENV`` or ``local``).

    ``home`` is the project root the file and relative paths are under; default
    :func:`project_home`.
    """
    env = env or os.environ.get(ENV_VAR) or "local"
    home = Path(home).resolve() if home is not None else project_home()
    path = home / "conf" / f"{env}.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: no settings for environment {env!r} (set {ENV_VAR})")
    try:
        data = yaml.load(path.read_text(), Loader=SAFE_LOADER) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    for var, field_path in OVERRIDES.items():
        if os.environ.get(var):
            _set(data, field_path, os.environ[var])
    try:
        settings = Settings(env=env, home=str(home), **data)
    except ValidationError as err:
        lines = [f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()]
        raise ConfigError("\n".join(lines)) from None
    return settings.model_copy(
        update={
            "lake_root": _absolute(home, settings.lake_root),
            "blueprints_dir": _absolute(home, settings.blueprints_dir),
            "mlflow": settings.mlflow.model_copy(
                update={
                    "tracking_uri": _sqlite_absolute(home, settings.mlflow.tracking_uri),
                    "artifact_root": _absolute(home, settings.mlflow.artifact_root),
                }
            ),
            "spark": settings.spark.model_copy(
                update={
                    "jars_dir": _absolute(home, settings.spark.jars_dir),
                    "python": expand_home(settings.spark.python, home),
                    "py_files": expand_home(settings.spark.py_files, home) if settings.spark.py_files else None,
                    "conf": {k: expand_home(v, home) for k, v in settings.spark.conf.items()},
                }
            ),
            "jobs": settings.jobs.model_copy(
                update={
                    "dir": _absolute(home, settings.jobs.dir),
                    "python": _command(home, settings.jobs.python),
                }
            ),
        }
    )


def expand_home(value: str, home: Path | str) -> str:
    """``{home}`` in a Spark setting is the project home (JVM options need absolute paths)."""
    return value.replace("{home}", str(home))


def _sqlite_absolute(home: Path, uri: str) -> str:
    """Make ``sqlite:///relative.db`` absolute so jobs agree whatever their cwd."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(home / uri[len(prefix):])
    return uri


def local_read_max_bytes(settings: Settings) -> int:
    """``local_read_max_mb`` in bytes (what ``lake.engine.Lake`` takes)."""
    return settings.local_read_max_mb * 1_000_000
