"""Candidate model families and their hyperopt search spaces.

Every family is a scikit-learn Pipeline over the model frame of
``training_data.to_model_frame`` (category columns as strings, numbers as floats),
so a registered model scores raw logged features with no extra preprocessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import log

import numpy as np
from hyperopt import hp
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, PolynomialFeatures, StandardScaler

SPACES = {
    "hist_gbdt": {
        "learning_rate": hp.loguniform("hgb_learning_rate", log(0.02), log(0.3)),
        "max_leaf_nodes": hp.quniform("hgb_max_leaf_nodes", 8, 48, 4),
        "min_samples_leaf": hp.quniform("hgb_min_samples_leaf", 10, 100, 10),
        "l2_regularization": hp.loguniform("hgb_l2", log(1e-4), log(1.0)),
    },
    "logistic": {
        "C": hp.loguniform("logistic_C", log(1e-3), log(100.0)),
        "interactions": hp.choice("logistic_interactions", [False, True]),
    },
    "linear": {
        "alpha": hp.loguniform("linear_alpha", log(1e-3), log(100.0)),
        "interactions": hp.choice("linear_interactions", [False, True]),
    },
    "random_forest": {
        "n_estimators": hp.quniform("rf_n_estimators", 40, 120, 20),
        "max_depth": hp.quniform("rf_max_depth", 3, 14, 1),
        "min_samples_leaf": hp.quniform("rf_min_samples_leaf", 1, 40, 1),
    },
}
_INTEGER_PARAMS = {"max_leaf_nodes", "min_samples_leaf", "n_estimators", "max_depth"}


def search_space(families: Sequence[str]) -> object:
    """A hyperopt space choosing a family and its parameters together."""
    return hp.choice("family", [{"family": f, **SPACES[f]} for f in families])


def clean_params(params: dict) -> dict:
    """hyperopt's floats to the ints and bools scikit-learn expects."""
    return {k: int(v) if k in _INTEGER_PARAMS else v for k, v in params.items()}


def _ordinal(categorical: list[str]) -> ColumnTransformer:
    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
    )
    return ColumnTransformer(
        [("categories", encoder, categorical)], remainder="passthrough", verbose_feature_names_out=False
    )


def _one_hot(categorical: list[str], numeric: list[str], interactions: bool) -> Pipeline:
    encode = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
            ("numbers", StandardScaler(), numeric),
        ]
    )
    steps = [("encode", encode)]
    if interactions:  # lets a linear model learn per-action effects (action x feature)
        steps.append(("interactions", PolynomialFeatures(2, interaction_only=True, include_bias=False)))
    return Pipeline(steps)


def build_model(params: dict, task: str, categorical: list[str], numeric: list[str]) -> Pipeline:
    """An unfitted pipeline for one family and parameter set."""
    params = clean_params(params)
    family = params.pop("family")
    classify = task in ("binary", "multiclass")
    if family == "hist_gbdt":
        cls = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        estimator = cls(
            categorical_features=list(range(len(categorical))), max_iter=200,
            early_stopping=True, random_state=0, **params,
        )
        return Pipeline([("prepare", _ordinal(categorical)), ("model", estimator)])
    if family == "random_forest":
        cls = RandomForestClassifier if classify else RandomForestRegressor
        estimator = cls(random_state=0, n_jobs=1, **params)
        return Pipeline([("prepare", _ordinal(categorical)), ("model", estimator)])
    if family in ("logistic", "linear"):
        interactions = bool(params.pop("interactions", False))
        if classify:
            strength = params.get("C", 1.0 / params.get("alpha", 1.0))
            estimator = LogisticRegression(C=strength, max_iter=2000)
        else:
            estimator = Ridge(alpha=params.get("alpha", 1.0 / params.get("C", 1.0)))
        return Pipeline([("prepare", _one_hot(categorical, numeric, interactions)), ("model", estimator)])
    raise ValueError(f"unknown model family {family!r}")
