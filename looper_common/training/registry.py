"""MLflow registry conventions and the audited alias history (``gold/alias_history``).

Registered models are ``looper.<blueprint>.<label>``; the alias ``champion`` is what
gets published, ``challenger`` the newest candidate. Every alias move, by a job or
by a reviewer in the MLflow UI (at its time through ``alias_webhook``'s receiver, else
detected on the next run), is appended to ``gold/alias_history`` with who moved it, why
and the metrics. So is every move of a
blueprint's active Redis pointer (``publish_policies``, ``looper rollback``), as alias
``active_policy`` of ``looper.<blueprint>.policy``: :func:`live_at` answers which
policy version was served at any time.

Models load only through :func:`load_model`: the sklearn flavor in skops format, with
every type the file holds in :data:`TRUSTED_TYPES`, a list kept here and never read
from the artifact (whoever can register a model can write its MLmodel file).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, date, datetime

import mlflow
import pyarrow as pa
import pyarrow.compute as pc

from looper_common.contracts.config import Settings
from looper_common.lake.engine import Lake
from looper_common.lake.tables import ALIAS_HISTORY

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"

# Types outside skops' own trusted set that Looper's models hold (families.py, uplift.py),
# found with skops.io.get_untrusted_types on a fitted model of every family and learner.
# functools.partial wraps check_array inside scikit-learn's encoders; skops checks the
# function it wraps against this list too.
TRUSTED_TYPES = frozenset({
    "functools.partial",
    "looper_common.training.uplift.DRLearner",
    "looper_common.training.uplift.SLearner",
    "looper_common.training.uplift.TLearner",
    "looper_common.training.uplift.XLearner",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
    "sklearn.utils.validation.check_array",
})


ACTIVE_POLICY = "active_policy"  # the alias of a blueprint's active-pointer rows


class UntrustedModelError(RuntimeError):
    """A registered model that is not skops, or holds a type outside :data:`TRUSTED_TYPES`."""


def model_name(blueprint: str, label: str) -> str:
    return f"looper.{blueprint}.{label}"


def policy_pointer(blueprint: str) -> str:
    """The ``model`` of a blueprint's active-pointer rows in ``gold/alias_history``."""
    return f"looper.{blueprint}.policy"


def configure_mlflow(settings: Settings, blueprint: str) -> str:
    """Point MLflow at the configured store and return the blueprint's experiment id."""
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_registry_uri(settings.mlflow.tracking_uri)
    name = f"looper/{blueprint}"
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        root = settings.mlflow.artifact_root
        location = os.path.join(root, blueprint) if "://" not in root else f"{root.rstrip('/')}/{blueprint}"
        experiment_id = mlflow.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def alias_version(name: str, alias: str) -> str | None:
    """The version an alias points at, or None (also when the model is not registered yet)."""
    found = _aliased(name, alias)
    return None if found is None else str(found.version)


def _aliased(name: str, alias: str):
    """The ``ModelVersion`` an alias points at (with its tags), or None."""
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None


def pending_tag(alias: str) -> str:
    """The version tag :func:`move_alias` sets before moving ``alias`` there and deletes once the move is recorded."""
    return f"looper.pending_move.{alias}"


def versions_for_run(name: str, run_date: str, blueprint_version: str) -> list[str]:
    """Versions already registered for a run date and blueprint version (rerun detection)."""
    try:
        found = mlflow.MlflowClient().search_model_versions(f"name = '{name}'")
    except mlflow.exceptions.MlflowException:
        return []
    return sorted(
        (str(v.version) for v in found
         if v.tags.get("run_date") == run_date and v.tags.get("blueprint_version") == blueprint_version),
        key=int,
    )


def recorded_alias(lake: Lake, name: str, alias: str) -> str | None:
    """The version the alias history last recorded for ``alias`` (None if never or removed)."""
    moves = lake.read(ALIAS_HISTORY, filters=[("model", "=", name), ("alias", "=", alias)],
                      columns=("ts", "version")).table
    if moves.num_rows == 0:
        return None
    return moves["version"][pc.index(moves["ts"], pc.max(moves["ts"])).as_py()].as_py()


def record_alias_move(
    lake: Lake, *, name: str, alias: str, version: str | None,
    previous: str | None, actor: str, reason: str, metrics: dict[str, float] | None,
    blueprint: str, blueprint_version: str | None, run_date: date | None, ts: datetime | None = None,
) -> None:
    """Append one alias move to ``gold/alias_history``; ``ts`` is when it was made (default: now)."""
    row = {
        "model": name, "version": version, "alias": alias, "ts": ts or datetime.now(UTC), "previous_version": previous,
        "actor": actor, "reason": reason, "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "blueprint": blueprint, "blueprint_version": blueprint_version, "run_date": run_date,
    }
    lake.append(ALIAS_HISTORY, pa.Table.from_pylist([row], schema=ALIAS_HISTORY.schema))


def record_pointer_move(
    lake: Lake, *, blueprint: str, version: str | None, previous: str | None, actor: str, reason: str,
    metrics: dict[str, float] | None = None, blueprint_version: str | None = None, run_date: date | None = None,
) -> None:
    """Append one move of the blueprint's active policy pointer to ``gold/alias_history``."""
    record_alias_move(
        lake, name=policy_pointer(blueprint), alias=ACTIVE_POLICY, version=version, previous=previous,
        actor=actor, reason=reason, metrics=metrics, blueprint=blueprint, blueprint_version=blueprint_version,
        run_date=run_date,
    )


def live_at(lake: Lake, blueprint: str, ts: datetime) -> str | None:
    """The policy version the blueprint's active pointer held at ``ts`` (None: the default was served)."""
    moves = lake.read(ALIAS_HISTORY, filters=[("model", "=", policy_pointer(blueprint)), ("alias", "=", ACTIVE_POLICY)],
                      columns=("ts", "version")).table
    moves = moves.filter(pc.less_equal(moves["ts"], pa.scalar(ts, moves.schema.field("ts").type)))
    if moves.num_rows == 0:
        return None
    return moves["version"][pc.index(moves["ts"], pc.max(moves["ts"])).as_py()].as_py()


def detect_reviewer_moves(lake: Lake, name: str, blueprint: str, run_date: date) -> list[str]:
    """Record alias moves made outside Looper (e.g. in the MLflow UI) since the last record.

    A move Looper made but did not record (the job died between MLflow and the history)
    is recognised by its version's pending tag and recorded as Looper's, at the time it
    was about to be made; a pending tag whose move is recorded is removed.
    """
    found = []
    for alias in (CHAMPION, CHALLENGER):
        aliased, recorded = _aliased(name, alias), recorded_alias(lake, name, alias)
        current = None if aliased is None else str(aliased.version)
        intent = _pending_move(aliased, alias)
        if current != recorded:
            if intent is not None and intent["previous"] == recorded:
                record_alias_move(
                    lake, name=name, alias=alias, version=current, previous=recorded, actor=intent["actor"],
                    reason=f"{intent['reason']} (recorded by the next run: the job that moved it stopped first)",
                    metrics=intent["metrics"], blueprint=blueprint, blueprint_version=intent["blueprint_version"],
                    run_date=date.fromisoformat(intent["run_date"]) if intent["run_date"] else None,
                    ts=datetime.fromisoformat(intent["ts"]),
                )
                found.append(f"{alias}: {recorded} -> {current} (by {intent['actor']}, recorded late)")
            else:
                record_alias_move(
                    lake, name=name, alias=alias, version=current, previous=recorded,
                    actor="reviewer (detected by evaluate_models)",
                    # MLflow stores no time for an alias move: this row's ts is when it was found
                    reason="alias moved outside Looper, e.g. in the MLflow UI (time found; MLflow keeps none)",
                    metrics=None, blueprint=blueprint, blueprint_version=None, run_date=run_date,
                )
                found.append(f"{alias}: {recorded} -> {current}")
        if intent is not None:
            mlflow.MlflowClient().delete_model_version_tag(name, current, pending_tag(alias))
    return found


def _pending_move(aliased, alias: str) -> dict | None:
    """The move :func:`move_alias` announced on the aliased version, if its tag is there and readable."""
    text = None if aliased is None else aliased.tags.get(pending_tag(alias))
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def move_alias(
    lake: Lake, *, name: str, alias: str, version: str, actor: str,
    reason: str, metrics: dict[str, float], blueprint: str, blueprint_version: str | None, run_date: date | None,
) -> bool:
    """Point ``alias`` at ``version`` in MLflow and record it; False when it already points there.

    The move is announced first (the version's :func:`pending_tag`: who, why, when, from
    which version), then made, then recorded, then the tag is removed: if the process
    dies after the move, :func:`detect_reviewer_moves` records it as this move, not a
    reviewer's.
    """
    client = mlflow.MlflowClient()
    previous = alias_version(name, alias)
    if previous == version and recorded_alias(lake, name, alias) == version:
        return False
    intent = {"actor": actor, "reason": reason, "ts": datetime.now(UTC).isoformat(), "previous": previous,
              "metrics": {k: float(v) for k, v in (metrics or {}).items()}, "blueprint_version": blueprint_version,
              "run_date": run_date.isoformat() if run_date else None}
    client.set_model_version_tag(name, version, pending_tag(alias), json.dumps(intent))
    client.set_registered_model_alias(name, alias, version)
    record_alias_move(
        lake, name=name, alias=alias, version=version, previous=previous, actor=actor,
        reason=reason, metrics=metrics, blueprint=blueprint, blueprint_version=blueprint_version,
        run_date=run_date,
    )
    client.delete_model_version_tag(name, version, pending_tag(alias))
    return True


def _model_version(uri: str) -> tuple[str, str]:
    """``(name, version)`` of ``models:/<name>/<version>`` or ``models:/<name>@<alias>``."""
    path = uri.removeprefix("models:/")
    if path == uri:
        raise ValueError(f"{uri!r} is not a models:/ URI of the registry")
    if "@" in path:
        name, alias = path.rsplit("@", 1)
        return name, str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
    name, version = path.rsplit("/", 1)
    return name, version


def load_model(uri: str) -> object:
    """The scikit-learn model at a ``models:/`` URI, loaded as skops with Looper's trusted types only.

    Raises :class:`UntrustedModelError` naming the model and version when the artifact
    is another flavor or format (a pickle runs code on load) or holds any type not in
    :data:`TRUSTED_TYPES`; nothing from the artifact is deserialized before the check.
    """
    import skops.io
    from mlflow.models import Model

    name, version = _model_version(uri)
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}")
    flavor = Model.load(os.path.join(local, "MLmodel")).flavors.get("sklearn")
    form = flavor.get("serialization_format") if flavor else None
    if form != "skops":
        found = "no sklearn flavor" if flavor is None else f"serialization_format {form!r}"
        raise UntrustedModelError(
            f"{name} version {version}: refused to load, {found}; Looper loads only sklearn models saved as "
            "skops (re-register it with mlflow.sklearn.log_model(..., serialization_format='skops'))"
        )
    path = os.path.join(local, flavor["pickled_model"])
    untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - TRUSTED_TYPES)
    if untrusted:
        raise UntrustedModelError(
            f"{name} version {version}: refused to load, it holds types outside "
            f"registry.TRUSTED_TYPES: {', '.join(untrusted)}"
        )
    return skops.io.load(path, trusted=sorted(TRUSTED_TYPES))
