"""Train, tune and register one model per label of a blueprint.

Time-based split (``splits.time_split``): candidates fit on the older examples,
hyperopt's TPE picks the family and its parameters together on the validation slice
(the newest matured date before the run date), each trial a nested MLflow run under
the job's parent run. The winner is refitted on training and validation rows together
and registered as ``looper.<blueprint>.<label>``; the job then points the
``challenger`` alias at it (recorded in the alias history). The holdout (the
examples matured on the run date), on which ``evaluate_models`` decides promotion, is
read by no fit and no selection step here.

The trainer depends on the policy type (``TRAINERS``): ``uplift`` blueprints fit the
S-, T-, X- and DR-learners instead, each a nested run, and keep the one with the best
Qini coefficient on the same validation slice.
"""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess
import warnings
from dataclasses import dataclass
from datetime import date

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import skops.io
from hyperopt import STATUS_OK, Trials, fmin, space_eval, tpe
from mlflow.models import infer_signature
from threadpoolctl import threadpool_limits

from looper_common.contracts.blueprint import Blueprint, LabelSpec
from looper_common.training.examples import to_model_frame
from looper_common.training.families import build_model, search_space
from looper_common.training.metrics import LOSS, baseline_metrics, model_metrics, predict_for_metrics
from looper_common.training.registry import model_name, versions_for_run
from looper_common.training.splits import time_split
from looper_common.training.uplift import LEARNERS, build_learner, treatment_propensity
from looper_common.training.uplift_metrics import auuc, qini_coefficient, qini_curve, qini_figure

log = logging.getLogger(__name__)
MIN_TRAIN_ROWS = 50
# scikit-learn's OpenMP threads while tuning (hist_gbdt). With a second thread, every one of a
# fit's many parallel regions waits for both threads to be scheduled: on the shared 2-core
# machine, where the Spark JVM and other tasks run too, 3,000-row fits took 0.4-4.2 s against
# 0.2-0.5 s single-threaded, and 200,000-row fits 18-38 s against 4.1-4.4 s.
MODEL_THREADS = 1


class TrainingError(RuntimeError):
    """The training set cannot produce a model (too few rows, a single class...)."""


@dataclass
class TrainResult:
    label: str
    model_name: str
    version: str
    family: str
    params: dict
    metrics: dict[str, float]
    baseline: dict[str, float]


def git_sha(home: str) -> str:
    """The commit the code runs from, for lineage tags ("unknown" outside a checkout)."""
    try:
        out = subprocess.run(["git", "-C", home, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _labels_array(wide: pd.DataFrame, label: LabelSpec, task: str) -> np.ndarray:
    y = wide[label.name].to_numpy(dtype="float64")
    return (y > 0).astype(int) if task == "binary" else y


def tune_label(
    train: pd.DataFrame, valid: pd.DataFrame, blueprint: Blueprint, label: LabelSpec, *, seed: int,
    refit_on: pd.DataFrame | None = None,
) -> tuple[object, dict, dict[str, float], dict[str, float]]:
    """Search families and parameters with TPE; returns (model, params, metrics, baseline).

    The metrics are the winner's on ``valid``; with ``refit_on`` the returned model is the
    winning family and parameters fitted again on those rows (else the trial's model).
    """
    task = blueprint.model.task
    categorical = [f.name for f in blueprint.features if f.type == "category"] + ["action"]
    numeric = [f.name for f in blueprint.features if f.type != "category"]
    x_train, x_valid = to_model_frame(train, blueprint), to_model_frame(valid, blueprint)
    y_train, y_valid = _labels_array(train, label, task), _labels_array(valid, label, task)
    if len(train) < MIN_TRAIN_ROWS:
        raise TrainingError(f"{label.name}: {len(train)} training rows, need {MIN_TRAIN_ROWS}")
    if task != "regression":
        counts = np.unique(y_train, return_counts=True)[1]
        if len(counts) < 2:
            raise TrainingError(f"{label.name}: a single class in the training rows")
        if counts.min() < 2:  # hist_gbdt's early stopping holds out a stratified share of each class
            raise TrainingError(f"{label.name}: {counts.min()} training row of its rarest class, need 2")
    loss_name = LOSS[task]
    fitted: dict[int, object] = {}

    def objective(params: dict) -> dict:
        trial = len(fitted)
        with mlflow.start_run(run_name=f"{label.name} trial {trial}", nested=True):
            model = build_model(dict(params), task, categorical, numeric)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(x_train, y_train)
            metrics = model_metrics(task, y_valid, predict_for_metrics(model, task, x_valid))
            mlflow.set_tag("label", label.name)
            mlflow.log_params({k: v for k, v in params.items()})
            mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        fitted[trial] = model
        return {"loss": metrics[loss_name], "status": STATUS_OK, "metrics": metrics, "trial": trial}

    trials = Trials()
    space = search_space(blueprint.model.families)
    with threadpool_limits(limits=MODEL_THREADS, user_api="openmp"):
        best = fmin(
            objective, space, algo=tpe.suggest, max_evals=blueprint.model.tuning.max_evals,
            trials=trials, rstate=np.random.default_rng(seed), show_progressbar=False,
        )
    winner = trials.best_trial["result"]
    params = space_eval(space, best)
    model = fitted[winner["trial"]]
    if refit_on is not None:
        model = build_model(dict(params), task, categorical, numeric)
        with warnings.catch_warnings(), threadpool_limits(limits=MODEL_THREADS, user_api="openmp"):
            warnings.simplefilter("ignore")
            model.fit(to_model_frame(refit_on, blueprint), _labels_array(refit_on, label, task))
    return model, params, winner["metrics"], baseline_metrics(task, y_train, y_valid)


def tune_uplift(
    train: pd.DataFrame, valid: pd.DataFrame, blueprint: Blueprint, label: LabelSpec, *, seed: int,
    refit_on: pd.DataFrame | None = None,
) -> tuple[object, dict, dict[str, float], dict[str, float]]:
    """Fit every uplift learner, keep the best Qini coefficient on ``valid``; as ``tune_label``.

    The treatment is the blueprint's first action. Each learner is a nested MLflow run
    with its Qini coefficient, AUUC and outcome metrics; the parent run gets the Qini
    curves of all of them. The learners are deterministic, so ``seed`` is unused.
    """
    task = blueprint.model.task
    if task not in ("binary", "regression"):
        raise TrainingError(f"{label.name}: uplift needs a binary or regression label, not {task}")
    if len(train) < MIN_TRAIN_ROWS:
        raise TrainingError(f"{label.name}: {len(train)} training rows, need {MIN_TRAIN_ROWS}")
    categorical = [f.name for f in blueprint.features if f.type == "category"]
    numeric = [f.name for f in blueprint.features if f.type != "category"]
    family = blueprint.model.families[0]
    actions = blueprint.decision.actions
    cost = float(blueprint.policy.params.get("cost", 0.0))
    x_train, x_valid = to_model_frame(train, blueprint), to_model_frame(valid, blueprint)
    y_train, y_valid = _labels_array(train, label, task), _labels_array(valid, label, task)
    treated = valid["action"].to_numpy() == actions[0]
    e_valid = treatment_propensity(valid["action"].to_numpy(), valid["propensity"].to_numpy(), actions[0])
    fitted: dict[str, object] = {}
    scored: dict[str, dict[str, float]] = {}
    effects: dict[str, np.ndarray] = {}
    for name in LEARNERS:
        with mlflow.start_run(run_name=f"{label.name} {name}-learner", nested=True):
            learner = build_learner(name, actions, task, categorical, numeric, family)
            try:
                learner.fit(x_train, y_train, train["propensity"].to_numpy(dtype="float64"))
                tau = learner.predict_uplift(x_valid)
                metrics = {
                    "qini_coefficient": qini_coefficient(tau, treated, y_valid, e_valid),
                    "auuc": auuc(tau, treated, y_valid, e_valid),
                    "treat_rate": float(np.mean(tau > cost)),
                    "mean_uplift": float(np.mean(tau)),
                    **model_metrics(task, y_valid, predict_for_metrics(learner, task, x_valid)),
                }
            except ValueError as err:
                raise TrainingError(f"{label.name}: {name}-learner: {err}") from None
            mlflow.set_tag("label", label.name)
            mlflow.log_params({"learner": name, "base_family": family})
            mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        fitted[name], scored[name], effects[f"{name}-learner"] = learner, metrics, tau
    figure = qini_figure(effects, treated, y_valid, e_valid, title=f"Qini curve: {label.name} (validation)")
    mlflow.log_figure(figure, f"qini_{label.name}.png")
    plt.close(figure)
    best = max(scored, key=lambda n: scored[n]["qini_coefficient"])
    ate = float(qini_curve(np.zeros(len(valid)), treated, y_valid, e_valid)[1][-1])
    # a constant effect ranks no one above anyone: Qini 0, AUUC half the average effect
    baseline = {**baseline_metrics(task, y_train, y_valid), "qini_coefficient": 0.0, "auuc": ate / 2.0}
    params = {"family": f"uplift_{best}", "learner": best, "base_family": family}
    log.info("%s: uplift learners by Qini %s; keeping %s",
             label.name, {n: round(m["qini_coefficient"], 5) for n, m in scored.items()}, best)
    model = fitted[best]
    if refit_on is not None:
        model = build_learner(best, actions, task, categorical, numeric, family)
        model.fit(to_model_frame(refit_on, blueprint), _labels_array(refit_on, label, task),
                  refit_on["propensity"].to_numpy(dtype="float64"))
    return model, params, scored[best], baseline


# How each policy type's models are trained; anything not listed uses tune_label.
TRAINERS = {"uplift": tune_uplift}


# What a registered model needs to be loaded and served, pinned to what trained it. Given
# explicitly, MLflow skips inferring them, which loads the saved model in a fresh Python
# process per model: about 9 s of CPU each on a demo day, and the inferred list carried
# whatever else the process had imported (pytest, rich).
MODEL_REQUIREMENTS = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")


def model_pip_requirements() -> list[str]:
    """``package==version`` of each of :data:`MODEL_REQUIREMENTS`, as installed here."""
    return [f"{package}=={importlib.metadata.version(package)}" for package in MODEL_REQUIREMENTS]


def register_model(
    model: object, frame: pd.DataFrame, blueprint: Blueprint, label: LabelSpec, tags: dict[str, str]
) -> str:
    """Log the model with signature and input example, register it and tag it."""
    name = model_name(blueprint.name, label.name)
    example = frame.head(5)
    task = blueprint.model.task
    output = model.predict_proba(example) if task != "regression" else model.predict(example)
    # skops (not pickle) format; the types to trust are those of the model we just built.
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    info = mlflow.sklearn.log_model(
        model, name=f"model_{label.name}", signature=infer_signature(example, output),
        input_example=example, registered_model_name=name, skops_trusted_types=trusted,
        pip_requirements=model_pip_requirements(),
    )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return version


def train_blueprint(
    wide: pd.DataFrame, blueprint: Blueprint, run_date: date, tags: dict[str, str], *, force: bool = False
) -> list[TrainResult]:
    """Tune and register a model per label inside the active parent run; skips labels already done.

    The holdout of ``splits.time_split`` is left out of every fit and every selection.
    """
    split = time_split(wide, run_date)
    train, valid = split.train, split.valid
    mlflow.log_params({"train_rows": len(train), "valid_rows": len(valid), "holdout_rows": len(split.holdout),
                       "run_date": str(run_date)})
    results = []
    for label in blueprint.labels:
        name = model_name(blueprint.name, label.name)
        done = versions_for_run(name, str(run_date), blueprint.version)
        if done and not force:
            log.info("%s: version %s already trained for %s, keeping it", name, done[0], run_date)
            continue
        try:
            trainer = TRAINERS.get(blueprint.policy.type, tune_label)
            model, params, metrics, baseline = trainer(
                train, valid, blueprint, label, seed=run_date.toordinal(), refit_on=split.fit
            )
        except TrainingError as err:
            log.warning("no model for %s: %s", name, err)
            continue
        mlflow.log_metrics({f"{label.name}.{k}": v for k, v in metrics.items() if np.isfinite(v)})
        version_tags = {
            **tags, "label": label.name, "family": params["family"],
            **{f"valid.{k}": f"{v:.6g}" for k, v in metrics.items()},
            **{f"baseline.{k}": f"{v:.6g}" for k, v in baseline.items()},
        }
        version = register_model(model, to_model_frame(split.fit, blueprint), blueprint, label, version_tags)
        log.info("%s v%s (%s): %s (baseline %s)", name, version, params["family"], metrics, baseline)
        results.append(TrainResult(label.name, name, version, params["family"], params, metrics, baseline))
    return results
