"""Models load only as skops with Looper's trusted types: a pickled champion registered by hand in
MLflow (on SQLite) is refused by name and version, and its payload never runs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression

from looper_common.training.registry import TRUSTED_TYPES, UntrustedModelError, load_model

pytestmark = pytest.mark.integration
NAME = "looper.t_notify.clicked"


class Payload:
    """Unpickling it writes the marker file: what a hostile model registered by hand would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def register_by_hand(tmp_path: Path, payload: Payload) -> str:
    """A sklearn MLmodel in pickle format whose model.pkl is the payload, registered as ``NAME``."""
    folder = tmp_path / "hand-made"
    mlflow.sklearn.save_model(_fitted(LogisticRegression), folder, serialization_format="pickle")
    (folder / "model.pkl").write_bytes(pickle.dumps(payload))
    mlflow.log_artifacts(str(folder), "m")
    return mlflow.register_model(f"runs:/{mlflow.active_run().info.run_id}/m", NAME).version


class Unknown(LogisticRegression):
    """A custom estimator type nobody listed in TRUSTED_TYPES."""


@pytest.fixture
def registry(tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("trusted", artifact_location=str(tmp_path / "artifacts"))
    with mlflow.start_run(experiment_id=experiment):
        yield mlflow.MlflowClient()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _fitted(cls: type[LogisticRegression]) -> LogisticRegression:
    x = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3})
    return cls().fit(x, (x.a > 20).astype(int))


def test_a_pickled_model_is_refused_by_name_and_version_and_its_payload_never_runs(registry, tmp_path):
    marker = tmp_path / "payload-ran"
    version = register_by_hand(tmp_path, Payload(marker))
    assert not marker.exists()  # registering does not run it; unpickling would
    registry.set_registered_model_alias(NAME, "champion", version)

    for uri in (f"models:/{NAME}/1", f"models:/{NAME}@champion"):
        refused = rf"{NAME} version {version}: refused to load, serialization_format 'pickle'"
        with pytest.raises(UntrustedModelError, match=refused):
            load_model(uri)
    assert not marker.exists()
    # the check is not vacuous: MLflow's own loader runs the payload of this very artifact
    mlflow.sklearn.load_model(f"models:/{NAME}/1")
    assert marker.exists()


def test_a_skops_model_whose_artifact_trusts_an_unknown_type_is_refused(registry):
    model = _fitted(Unknown)
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    assert trusted == [f"{__name__}.Unknown"]
    # the artifact's MLmodel lists the type as trusted; Looper does not read that list
    mlflow.sklearn.log_model(model, name="m", registered_model_name=NAME, skops_trusted_types=trusted)
    refused = rf"{NAME} version 1: .*outside registry.TRUSTED_TYPES: {__name__}.Unknown"
    with pytest.raises(UntrustedModelError, match=refused):
        load_model(f"models:/{NAME}/1")


def test_a_skops_model_of_trusted_types_loads_and_predicts(registry):
    model = _fitted(LogisticRegression)
    mlflow.sklearn.log_model(model, name="m", registered_model_name=NAME)
    loaded = load_model(f"models:/{NAME}/1")
    x = pd.DataFrame({"a": [1.0, 30.0], "b": [0.0, 1.0]})
    assert type(loaded) is LogisticRegression and "functools.partial" in TRUSTED_TYPES
    assert loaded.predict_proba(x) == pytest.approx(model.predict_proba(x))


def test_a_model_that_is_not_sklearn_is_refused(registry, tmp_path):
    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input

    mlflow.pyfunc.log_model(name="m", python_model=Echo(), registered_model_name=NAME)
    with pytest.raises(UntrustedModelError, match=rf"{NAME} version 1: refused to load, no sklearn flavor"):
        load_model(f"models:/{NAME}/1")
