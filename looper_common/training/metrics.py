"""Model metrics per task, and the trivial baseline a model must beat."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

LOSS = {"binary": "log_loss", "multiclass": "log_loss", "regression": "rmse"}


def model_metrics(task: str, y_true: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Metrics of predictions (P(y=1) for binary, class probabilities for multiclass, values else)."""
    y_true = np.asarray(y_true)
    if task == "binary":
        p = np.clip(np.asarray(prediction, dtype="float64"), 1e-6, 1 - 1e-6)
        both = len(np.unique(y_true)) == 2
        return {
            "log_loss": float(log_loss(y_true, p, labels=[0, 1])),
            "roc_auc": float(roc_auc_score(y_true, p)) if both else float("nan"),
            "brier": float(brier_score_loss(y_true, p)),
            "mean_prediction": float(p.mean()),
            "positive_rate": float(y_true.mean()),
        }
    if task == "multiclass":
        proba, classes = prediction
        return {
            "log_loss": float(log_loss(y_true, proba, labels=classes)),
            "accuracy": float(np.mean(np.asarray(classes)[np.argmax(proba, axis=1)] == y_true)),
        }
    return {
        "rmse": float(root_mean_squared_error(y_true, prediction)),
        "mae": float(mean_absolute_error(y_true, prediction)),
        "r2": float(r2_score(y_true, prediction)) if len(y_true) > 1 else float("nan"),
    }


def baseline_metrics(task: str, y_train: np.ndarray, y_valid: np.ndarray) -> dict[str, float]:
    """Metrics of the constant predictor fitted on the training labels (what "no signal" scores)."""
    y_train = np.asarray(y_train)
    n = len(y_valid)
    if task == "binary":
        return model_metrics(task, y_valid, np.full(n, y_train.mean()))
    if task == "multiclass":
        classes, counts = np.unique(y_train, return_counts=True)
        return model_metrics(task, y_valid, (np.tile(counts / counts.sum(), (n, 1)), classes))
    return model_metrics(task, y_valid, np.full(n, y_train.mean()))


def predict_for_metrics(model: object, task: str, frame) -> object:
    """What ``model_metrics`` expects from a fitted model."""
    if task == "binary":
        return model.predict_proba(frame)[:, 1]
    if task == "multiclass":
        return model.predict_proba(frame), model.classes_
    return model.predict(frame)
