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
    return math.inf if threshold is None else float(threshold)


class _TreeCode:
    """Trees compiled to one Python function of the input row: a nested conditional per tree.

    A tree walked node by node costs a tuple unpack and an index per node; as generated
    code each node is one comparison. Only numbers the document holds (checked as int or
    float here) and names of constants (category sets, leaf vectors) enter the source.
    A split sends a missing value (NaN) where scikit-learn does: ``not (v > t)`` is true
    for NaN, ``v <= t`` is not.
    """

    def __init__(self) -> None:
        self.constants: dict[str, object] = {"INF": math.inf}

    def constant(self, value: object) -> str:
        name = f"c{len(self.constants)}"
        self.constants[name] = value
        return name

    @staticmethod
    def number(value: float) -> str:
        value = float(value)
        return "INF" if value == math.inf else repr(value)

    def hgb(self, nodes: list, i: int = 0) -> str:
        f, thr, missing_left, left, right, value, left_codes, known_codes = nodes[i]
        if int(f) < 0:
            return self.number(value)
        v, go_left, go_right = f"x[{int(f)}]", self.hgb(nodes, int(left)), self.hgb(nodes, int(right))
        if left_codes is not None:
            if missing_left:  # unknown categories count as missing
                right_codes = frozenset(float(c) for c in known_codes) - {float(c) for c in left_codes}
                return f"({go_right} if {v} in {self.constant(right_codes)} else {go_left})"
            return f"({go_left} if {v} in {self.constant(frozenset(float(c) for c in left_codes))} else {go_right})"
        test = f"not ({v} > {self.number(_inf(thr))})" if missing_left else f"{v} <= {self.number(_inf(thr))}"
        return f"({go_left} if {test} else {go_right})"

    def forest(self, tree: Mapping[str, list], values: list, i: int = 0) -> str:
        left, right = tree["left"][i], tree["right"][i]
        if left == -1:
            return self.constant(tuple(values[i]))
        v, thr = f"x[{int(tree['feature'][i])}]", self.number(_inf(tree["threshold"][i]))
        test = f"not ({v} > {thr})" if tree["missing_left"][i] else f"{v} <= {thr}"
        return f"({self.forest(tree, values, int(left))} if {test} else {self.forest(tree, values, int(right))})"

    def function(self, lines: list[str]) -> object:
        source = "def model(x):\n" + "".join(f"    {line}\n" for line in lines)
        namespace = dict(self.constants)
        exec(compile(source, "<compact model>", "exec"), namespace)  # noqa: S102 - generated from numbers only
        return namespace["model"]


def _hgb_function(baseline: list[float], iterations: list[list[list]]) -> object:
    """raw[k] = baseline[k] + each iteration's tree k, added in scikit-learn's order."""
    code = _TreeCode()
    lines = [f"r{k} = {code.number(b)}" for k, b in enumerate(baseline)]
    for trees in iterations:
        lines += [f"r{k} += {code.hgb(tree)}" for k, tree in enumerate(trees)]
    lines.append("return [" + ", ".join(f"r{k}" for k in range(len(baseline))) + "]")
    return code.function(lines)


def _forest_function(trees: list[Mapping[str, list]], leaf) -> object:
    """The sum over trees of each leaf's (normalized) value vector, divided by the number of trees."""
    code = _TreeCode()
    width = len(trees[0]["value"][0])
    lines = [f"s{k} = 0.0" for k in range(width)]
    for tree in trees:
        lines.append(f"t = {code.forest(tree, [leaf(v) for v in tree['value']])}")
        lines += [f"s{k} += t[{k}]" for k in range(width)]
    lines.append("return [" + ", ".join(f"s{k} / {len(trees)}" for k in range(width)) + "]")
    return code.function(lines)


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
            self.action_at = self.columns.index("action")
        if self.kind == "hist_gbdt":
            self.trees = _hgb_function(model["baseline"], model["iterations"])
        elif self.kind == "forest":
            self.trees = _forest_function(model["trees"], self._leaf)
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
            p = _sigmoid(raw[0])
            return [1.0 - p, p]
        if self.link == "softmax":
            return _softmax(raw)
        return raw

    def score(self, features: Mapping[str, object], action: str, row: list[float] | None = None) -> float:
        """``decision_science.policies.predict_scores`` of one row: P(1), the expected class or the value."""
        out = self._outputs(features, action, row)
        if self.task == "binary":
            return out[1]
        if self.task == "multiclass":
            return sum(p * float(c) for p, c in zip(out, self.classes, strict=True))
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
