"""The champion in a compact form the SDK scores without NumPy (``sdk.online`` evaluates it).

Every family of ``training.families`` is a Pipeline of an encoder and one estimator;
:func:`export_model` writes what predicting needs as plain JSON:

- ``hist_gbdt``: the ordinal encoder's categories, the baseline and every tree of
  every iteration as node arrays (feature, threshold, missing-goes-left, children,
  leaf value, and for categorical splits the category codes that go left and those
  known), read from the fitted predictors as their own prediction code walks them;
- ``random_forest``: the same encoder and each tree's public ``tree_`` arrays;
- ``logistic`` / ``linear``: the one-hot categories, the scaler's mean and scale, the
  interaction pairs and the coefficients.

:func:`compact_document` adds the policy the SDK applies to the scores, and
:func:`encode_document` gives the bytes and their sha256, published with the policy
version (``publish_compact``) so the SDK loads each version once and checks it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping

import numpy as np
import redis
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from looper_common.contracts.blueprint import Blueprint
from looper_common.decision_science.rewards import class_values, label_spec
from looper_common.sdk.online import FORMAT, MODEL_FIELD, MODEL_SHA_FIELD, model_key

log = logging.getLogger(__name__)


class NotExportable(ValueError):
    """The model is not one of the families the compact form covers (the lookup keeps serving)."""


def _threshold(value: float) -> float | None:
    """A split threshold for JSON: +inf (a split of missing values from all others) as null."""
    return None if value == np.inf else float(value)


def _bits(bitset: np.ndarray) -> list[int]:
    """The values set in one of scikit-learn's 256-bit category bitsets (8 uint32 words)."""
    return [32 * w + b for w, word in enumerate(bitset.tolist()) for b in range(32) if (int(word) >> b) & 1]


def _ordinal_columns(prepare) -> tuple[list[str], dict[str, list[str]]]:
    """The encoder's output columns (categories first, the rest passed through) and each one's categories."""
    columns = [str(c) for c in prepare.get_feature_names_out()]
    encoder = prepare.named_transformers_["categories"]
    names = [str(c) for c in encoder.feature_names_in_]
    return columns, {name: [str(v) for v in cats] for name, cats in zip(names, encoder.categories_, strict=True)}


def _hgb_trees(estimator) -> dict:
    # The fitted trees are only reachable through the estimator's predictors; the node
    # fields read here are those of scikit-learn's own _predict_one_from_raw_data.
    known, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
    iterations = []
    for per_iteration in estimator._predictors:
        trees = []
        for predictor in per_iteration:
            nodes = []
            for node in predictor.nodes:
                if node["is_leaf"]:
                    nodes.append([-1, 0.0, 0, 0, 0, float(node["value"]), None, None])
                    continue
                feature = int(node["feature_idx"])
                left_codes = known_codes = None
                if node["is_categorical"]:
                    left_codes = _bits(predictor.raw_left_cat_bitsets[node["bitset_idx"]])
                    known_codes = _bits(known[f_idx_map[feature]])
                nodes.append([feature, _threshold(node["num_threshold"]), int(node["missing_go_to_left"]),
                              int(node["left"]), int(node["right"]), 0.0, left_codes, known_codes])
            trees.append(nodes)
        iterations.append(trees)
    return {"baseline": [float(v) for v in np.ravel(estimator._baseline_prediction)], "iterations": iterations}


def _forest_trees(estimator) -> list[dict]:
    trees = []
    for tree in estimator.estimators_:
        t = tree.tree_
        value = t.value[:, 0, :]
        trees.append({
            "feature": t.feature.tolist(), "threshold": [_threshold(v) for v in t.threshold],
            "left": t.children_left.tolist(), "right": t.children_right.tolist(),
            "missing_left": t.missing_go_to_left.astype(int).tolist(), "value": value.tolist(),
        })
    return trees


def _linear(pipeline: Pipeline, estimator) -> dict:
    encode = pipeline.named_steps["prepare"]
    onehot = encode.named_steps["encode"].named_transformers_["categories"]
    scaler = encode.named_steps["encode"].named_transformers_["numbers"]
    pairs = None
    if "interactions" in encode.named_steps:
        powers = encode.named_steps["interactions"].powers_
        pairs = [[int(i) for i in np.flatnonzero(row)] for row in powers]
    return {
        "onehot": [[str(name), [str(v) for v in cats]]
                   for name, cats in zip(onehot.feature_names_in_, onehot.categories_, strict=True)],
        "scaled": [[str(name), float(m), float(s)]
                   for name, m, s in zip(scaler.feature_names_in_, scaler.mean_, scaler.scale_, strict=True)],
        "pairs": pairs,
        "coef": np.atleast_2d(estimator.coef_).tolist(),
        "intercept": np.atleast_1d(estimator.intercept_).tolist(),
    }


def export_model(model: object) -> dict:
    """The compact form of a fitted family pipeline; :class:`NotExportable` for anything else."""
    if not isinstance(model, Pipeline) or "model" not in model.named_steps:
        raise NotExportable(f"{type(model).__name__} is not a model family pipeline")
    estimator = model.named_steps["model"]
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(estimator, "classes_", [])]
    if isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        columns, categories = _ordinal_columns(model.named_steps["prepare"])
        if isinstance(estimator, HistGradientBoostingRegressor) and estimator.loss != "squared_error":
            raise NotExportable(f"hist_gbdt loss {estimator.loss!r}")
        link = "identity" if not classes else ("logistic" if len(classes) == 2 else "softmax")
        body = {"kind": "hist_gbdt", "columns": columns, "categories": categories, **_hgb_trees(estimator)}
    elif isinstance(estimator, (RandomForestClassifier, RandomForestRegressor)):
        columns, categories = _ordinal_columns(model.named_steps["prepare"])
        link = "vote" if classes else "mean"
        body = {"kind": "forest", "columns": columns, "categories": categories, "trees": _forest_trees(estimator)}
    elif isinstance(estimator, (LogisticRegression, Ridge)):
        link = "identity" if not classes else ("logistic" if len(classes) == 2 else "softmax")
        body = {"kind": "linear", **_linear(model, estimator)}
    else:
        raise NotExportable(f"{type(estimator).__name__} has no compact form")
    return {**body, "link": link, "classes": classes}


def compact_document(
    model: object, blueprint: Blueprint, params: Mapping[str, object] | None = None
) -> dict:
    """What the SDK needs to serve online: the model, its inputs and task, and the policy it applies.

    A multiclass model's ``rewards`` are those of its classes (``decision_science.rewards``).
    """
    body = export_model(model)
    rewards = {}
    if blueprint.model.task == "multiclass":
        values = class_values(label_spec(blueprint), np.asarray(body["classes"]))
        if np.isnan(values).any():
            raise NotExportable(f"classes {body['classes']} not all declared by the objective's classes")
        rewards = {"rewards": values.tolist()}
    return {
        "format": FORMAT,
        "blueprint": blueprint.name,
        "blueprint_version": blueprint.version,
        "task": blueprint.model.task,
        "actions": list(blueprint.decision.actions),
        "features": [[f.name, f.type] for f in blueprint.features],
        "policy": {"type": blueprint.policy.type, "params": {**blueprint.policy.params, **(params or {})}},
        "model": body,
        **rewards,
    }


def encode_document(document: Mapping[str, object]) -> tuple[bytes, str]:
    """Canonical JSON bytes of the document and their sha256 (hex)."""
    raw = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    return raw, hashlib.sha256(raw).hexdigest()


def publish_compact(
    client: redis.Redis, blueprint: Blueprint, version: str, document: Mapping[str, object], *, ttl_seconds: int
) -> dict[str, str]:
    """Write the version's compact model (expiring with its entries); returns the meta fields to add."""
    raw, digest = encode_document(document)
    client.set(model_key(blueprint.name, version), raw, ex=ttl_seconds)
    return {MODEL_FIELD: model_key(blueprint.name, version), MODEL_SHA_FIELD: digest}


def publish_for_serving(
    client: redis.Redis, blueprint: Blueprint, version: str, models: Mapping[str, object],
    params: Mapping[str, object] | None, *, ttl_seconds: int,
) -> dict[str, str]:
    """The compact champion for a blueprint served ``online`` or ``hybrid`` (else nothing).

    Returns the meta fields that point the SDK at it; none when the model or policy has no
    compact form (the version is then served by lookup, and the reason logged).
    """
    if blueprint.serving.mode == "lookup":
        return {}
    if len(models) != 1:
        log.warning("%s: a policy over %d models is served by lookup, not online", blueprint.name, len(models))
        return {}
    try:
        document = compact_document(next(iter(models.values())), blueprint, params)
    except NotExportable as err:
        log.warning("%s: no compact model (%s): served by lookup", blueprint.name, err)
        return {}
    fields = publish_compact(client, blueprint, version, document, ttl_seconds=ttl_seconds)
    log.info("%s: compact model of %s published (sha256 %s)", blueprint.name, version, fields[MODEL_SHA_FIELD][:12])
    return fields
