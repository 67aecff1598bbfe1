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

from looper_common.contracts import policy_store

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


def _sigmoid(z: float) -> float:
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _softmax(z: Sequence[float]) -> list[float]:
    top = max(z)
    e = [math.exp(v - top) for v in z]
    total = sum(e)
    return [v / total for v in e]


def _inf(threshold: float | None) -> float:
    return math.inf if threshold is None else threshold


def _hgb_tree(nodes: list) -> tuple:
    return tuple((f, _inf(thr), bool(ml), left, right, value,
                  frozenset(lc) if lc is not None else None, frozenset(kc) if kc is not None else None)
                 for f, thr, ml, left, right, value, lc, kc in nodes)


def _walk_hgb(nodes: tuple, x: list[float]) -> float:
    """One tree as scikit-learn's ``_predict_one_from_raw_data`` walks it."""
    node = nodes[0]
    while True:
        f, thr, missing_left, left, right, value, left_codes, known_codes = node
        if f < 0:
            return value
        v = x[f]
        if v != v:
            node = nodes[left if missing_left else right]
        elif left_codes is not None:
            if v in left_codes:
                node = nodes[left]
            elif v in known_codes:
                node = nodes[right]
            else:  # a category the trees never saw counts as missing
                node = nodes[left if missing_left else right]
        else:
            node = nodes[left if v <= thr else right]


def _walk_tree(tree: tuple, x: list[float]) -> list[float]:
    """One decision tree of a forest as scikit-learn applies it (inputs as float32)."""
    feature, threshold, lefts, rights, missing_left, values = tree
    i = 0
    while lefts[i] != -1:
        v = x[feature[i]]
        if v != v:
            i = lefts[i] if missing_left[i] else rights[i]
        else:
            i = lefts[i] if _float32.unpack(_float32.pack(v))[0] <= threshold[i] else rights[i]
    return values[i]


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
        if self.kind in ("hist_gbdt", "forest"):
            self.columns = model["columns"]
            codes = {name: {c: float(i) for i, c in enumerate(cats)} for name, cats in model["categories"].items()}
            self.codes = [codes.get(c) for c in self.columns]
        if self.kind == "hist_gbdt":
            self.baseline = model["baseline"]
            self.iterations = [[_hgb_tree(t) for t in trees] for trees in model["iterations"]]
        elif self.kind == "forest":
            self.trees = [(t["feature"], [_inf(v) for v in t["threshold"]], t["left"], t["right"], t["missing_left"],
                           [self._leaf(v) for v in t["value"]]) for t in model["trees"]]
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

    def _outputs(self, features: Mapping[str, object], action: str) -> list[float]:
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
            x = []
            for name, codes in zip(self.columns, self.codes, strict=True):
                value = self._value(name, features, action)
                x.append(codes.get(value, NAN) if codes is not None else value)
            if self.kind == "hist_gbdt":
                raw = list(self.baseline)
                for trees in self.iterations:
                    for k, tree in enumerate(trees):
                        raw[k] += _walk_hgb(tree, x)
            else:
                sums = None
                for tree in self.trees:
                    leaf = _walk_tree(tree, x)
                    sums = list(leaf) if sums is None else [s + v for s, v in zip(sums, leaf, strict=True)]
                return [s / len(self.trees) for s in sums]
        if self.link == "logistic":
            p = _sigmoid(raw[0])
            return [1.0 - p, p]
        if self.link == "softmax":
            return _softmax(raw)
        return raw

    def score(self, features: Mapping[str, object], action: str) -> float:
        """``decision_science.policies.predict_scores`` of one row: P(1), the expected class or the value."""
        out = self._outputs(features, action)
        if self.task == "binary":
            return out[1]
        if self.task == "multiclass":
            return sum(p * float(c) for p, c in zip(out, self.classes, strict=True))
        return out[0]

    def scores(self, features: Mapping[str, object]) -> dict[str, float]:
        return {action: self.score(features, action) for action in self.actions}

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
        """Scored entries for the requests; a published entry's ``"f"`` fills features a request lacks.

        A request that cannot be scored (a value that is not a number) keeps its looked-up entry.
        """
        out: list[bytes | None] = []
        for (_, features), raw in zip(requests, looked_up, strict=True):
            if raw is not None and b'"f"' in raw:
                features = {**json.loads(raw).get("f", {}), **features}
            try:
                scores = self.scores(features)
            except (TypeError, ValueError) as err:
                log.warning("online scoring failed, serving the lookup entry: %s", err)
                out.append(raw)
                continue
            out.append(policy_store.encode_entry(self.choose(scores), scores))
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
        except redis.RedisError as err:  # not cached: the next call retries
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
