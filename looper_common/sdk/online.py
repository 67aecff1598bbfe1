"""Online scoring: the champion's compact form evaluated on the request's features, in pure Python.

``publishing.compact_model`` publishes, with each policy version, a JSON document of the
champion (trees or coefficients), its inputs and the policy to apply, and records its
key and sha256 in the version's meta hash. :class:`OnlineModels` loads it once per
version and checks the digest; :meth:`CompactModel.entries` turns requests into the
same ``{"a": action, "s": scores}`` entries a lookup returns, so exploration, the
logged propensity and scores, and the event are those of the lookup path. Modes
(``serving.mode``): ``online`` scores the request's features; ``hybrid`` also reads
the unit's published entry, whose ``"f"`` features (batch-only ones) fill those the
request does not carry, and serves the entry itself when scoring fails. A version
without a usable compact form is served by lookup.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import struct
from collections.abc import Mapping, Sequence

import redis

from looper_common.contracts import policy_store, redis_conn
from looper_common.sdk.compact_trees import forest_function, hgb_function, sigmoid, softmax

log = logging.getLogger(__name__)
FORMAT = "looper.compact/1"
MODEL_FIELD = "compact_model"  # meta field: the key of the version's compact model
MODEL_SHA_FIELD = "compact_model_sha256"  # meta field: sha256 of its bytes
MISSING = "__missing__"  # as training.examples.MISSING: a category the request does not give
NAN = float("nan")
_float32 = struct.Struct("f")


def model_key(blueprint: str, version: str) -> str:
    """Key of a version's compact model, next to its meta hash (same hash tag)."""
    return policy_store.meta_key(blueprint, f"model:{version}")


class CompactModel:
    """A published compact model: per-action scores and the policy's greedy action for a request."""

    def __init__(self, document: Mapping[str, object]) -> None:
        if document.get("format") != FORMAT:
            raise ValueError(f"compact model format {document.get('format')!r}, expected {FORMAT!r}")
        self.actions = list(document["actions"])
        self.task = document["task"]
        self.types = {name: kind for name, kind in document["features"]}
        policy = document["policy"]
        self.policy, self.params = policy["type"], policy["params"]
        if self.policy not in ("threshold", "argmax", "uplift"):
            raise ValueError(f"the {self.policy} policy is not served online")
        model = document["model"]
        self.kind, self.link, self.classes = model["kind"], model["link"], model["classes"]
        self.rewards = [float(r) for r in document.get("rewards") or self.classes or ()]  # multiclass: per class
        if self.kind in ("hist_gbdt", "forest"):
            self.columns = model["columns"]
            codes = {name: {c: float(i) for i, c in enumerate(cats)} for name, cats in model["categories"].items()}
            self.codes = [codes.get(c) for c in self.columns]
            self.action_at = self.columns.index("action")
        if self.kind == "hist_gbdt":
            self.trees = hgb_function(model["baseline"], model["iterations"])
        elif self.kind == "forest":
            self.trees = forest_function(model["trees"], self._leaf)
        elif self.kind == "linear":
            self.onehot = [(name, {c: i for i, c in enumerate(cats)}, len(cats)) for name, cats in model["onehot"]]
            self.scaled = model["scaled"]
            self.pairs = model["pairs"]
            self.coef, self.intercept = model["coef"], model["intercept"]
        else:
            raise ValueError(f"unknown compact model kind {self.kind!r}")

    def _leaf(self, value: list[float]) -> list[float]:
        if self.link != "vote":
            return value
        total = sum(value)
        return [v / total for v in value] if total else value

    def _value(self, name: str, features: Mapping[str, object], action: str):
        raw = action if name == "action" else features.get(name)
        if self.types.get(name, "category") == "category" or name == "action":
            return MISSING if raw is None else str(raw)
        if raw is None:
            return NAN
        return float(raw)

    def _tree_row(self, features: Mapping[str, object]) -> list[float]:
        """The encoded input of the tree kinds, shared by every action (its column is set per action)."""
        x = []
        for name, codes in zip(self.columns, self.codes, strict=True):
            value = self._value(name, features, "")
            x.append(codes.get(value, NAN) if codes is not None else value)
        if self.kind == "forest":  # scikit-learn's trees compare float32 inputs
            x = [_float32.unpack(_float32.pack(v))[0] for v in x]
        return x

    def _outputs(self, features: Mapping[str, object], action: str, row: list[float] | None = None) -> list[float]:
        """The estimator's outputs (probabilities or the value) for one model frame row."""
        if self.kind == "linear":
            x: list[float] = []
            for name, index, size in self.onehot:
                row = [0.0] * size
                i = index.get(self._value(name, features, action))
                if i is not None:
                    row[i] = 1.0
                x.extend(row)
            x.extend((self._value(name, features, action) - mean) / scale for name, mean, scale in self.scaled)
            if self.pairs is not None:
                x = [x[p[0]] if len(p) == 1 else x[p[0]] * x[p[1]] for p in self.pairs]
            raw = [sum(w * v for w, v in zip(row, x, strict=True)) + b
                   for row, b in zip(self.coef, self.intercept, strict=True)]
        else:
            x = list(row if row is not None else self._tree_row(features))
            x[self.action_at] = self.codes[self.action_at].get(action, NAN)
            raw = self.trees(x)
            if self.kind == "forest":
                return raw
        if self.link == "logistic":
            p = sigmoid(raw[0])
            return [1.0 - p, p]
        if self.link == "softmax":
            return softmax(raw)
        return raw

    def score(self, features: Mapping[str, object], action: str, row: list[float] | None = None) -> float:
        """``decision_science.policies.predict_scores`` of one row: P(1), the expected reward or the value."""
        out = self._outputs(features, action, row)
        if self.task == "binary":
            return out[1]
        if self.task == "multiclass":
            return sum(p * r for p, r in zip(out, self.rewards, strict=True))
        return out[0]

    def scores(self, features: Mapping[str, object]) -> dict[str, float]:
        row = self._tree_row(features) if self.kind != "linear" else None
        return {action: self.score(features, action, row) for action in self.actions}

    def choose(self, scores: Mapping[str, float]) -> str:
        """``policies.choose_actions`` for one unit."""
        a = self.actions
        if self.policy == "threshold":
            return a[0] if scores[a[0]] >= float(self.params.get("threshold", 0.5)) else a[1]
        if self.policy == "uplift":
            return a[0] if scores[a[0]] - scores[a[1]] > float(self.params.get("cost", 0.0)) else a[1]
        offsets = self.params.get("offsets", {}) or {}
        best, top = a[0], -math.inf
        for action in a:  # the first of equal maxima, as np.argmax
            value = scores[action] + float(offsets.get(action, 0.0))
            if value > top:
                best, top = action, value
        return best

    def entries(
        self, requests: Sequence[tuple[str, Mapping[str, object]]], looked_up: Sequence[bytes | None]
    ) -> list[bytes | None]:
        """Scored entries for the requests (hybrid: after :func:`with_batch_features`).

        A request that cannot be scored (a value that is not a number) keeps its looked-up entry.
        """
        out: list[bytes | None] = []
        for (_, features), raw in zip(requests, looked_up, strict=True):
            try:
                scores = self.scores(features)
            except (TypeError, ValueError) as err:
                log.warning("online scoring failed, serving the lookup entry: %s", err)
                out.append(raw)
                continue
            out.append(policy_store.encode_entry(self.choose(scores), scores))
        return out


def with_batch_features(
    requests: Sequence[tuple[str, Mapping[str, object]]], looked_up: Sequence[bytes | None]
) -> list[tuple[str, Mapping[str, object]]]:
    """Hybrid serving: each request with its unit's published ``"f"`` features under its own.

    ``publish_policies`` writes there the latest values of the blueprint's ``source: batch``
    features; what the request itself carries wins. The result is what is scored and
    logged, so the training data holds the features the decision was made from.
    """
    out = []
    for (unit_id, features), raw in zip(requests, looked_up, strict=True):
        if raw is not None and b'"f"' in raw:
            try:
                batch = json.loads(raw).get("f")
            except ValueError:  # a corrupt entry: served the default later, with its reason
                batch = None
            if isinstance(batch, dict):
                features = {**batch, **features}
        out.append((unit_id, features))
    return out


def load_document(raw: bytes, sha256: str) -> CompactModel:
    """Parse a published compact model after checking its digest."""
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise ValueError(f"compact model digest {digest[:12]}... does not match the published {sha256[:12]}...")
    return CompactModel(json.loads(raw))


class OnlineModels:
    """Each blueprint's compact model, loaded once per published version (None: serve by lookup)."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._loaded: dict[tuple[str, str], CompactModel | None] = {}

    def get(self, blueprint: str, version: str) -> CompactModel | None:
        key = (blueprint, version)
        if key in self._loaded:
            return self._loaded[key]
        try:
            where, sha = self._redis.hmget(policy_store.meta_key(blueprint, version), [MODEL_FIELD, MODEL_SHA_FIELD])
            raw = self._redis.get(where.decode()) if where is not None and sha is not None else None
        except redis_conn.ERRORS as err:  # not cached: the next call retries
            log.warning("%s: compact model of %s not read, serving by lookup: %s", blueprint, version, err)
            return None
        model = None
        if raw is not None:
            try:
                model = load_document(raw, sha.decode())
            except (ValueError, KeyError, TypeError) as err:
                log.error("%s: compact model of %s unusable, serving by lookup: %s", blueprint, version, err)
        self._loaded = {k: v for k, v in self._loaded.items() if k[0] != blueprint}  # one version per blueprint
        self._loaded[key] = model
        return model
