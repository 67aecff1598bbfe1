"""Training: model families, hyperopt tuning, the training examples and the MLflow registry."""

from __future__ import annotations

from looper_common._exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    train="train_blueprint",
    examples="load_training_frame",
    registry="model_name",
    training_run="train_models TrainRun",
)
