"""Training: model families, hyperopt tuning, the training examples and the MLflow registry."""

from __future__ import annotations

from looper_common._exports import lazy_exports

_EXPORTS = {
    "train_blueprint": "train",
    "load_training_frame": "examples",
    "model_name": "registry",
    "train_models": "training_run",
    "TrainRun": "training_run",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
