"""The compact model's arithmetic in pure Python: link functions, and trees compiled to code.

:class:`~looper_common.sdk.online.CompactModel` evaluates a published champion with
these; nothing here reads Redis or the document's format.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def sigmoid(z: float) -> float:
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def softmax(z: Sequence[float]) -> list[float]:
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


def hgb_function(baseline: list[float], iterations: list[list[list]]) -> object:
    """raw[k] = baseline[k] + each iteration's tree k, added in scikit-learn's order."""
    code = _TreeCode()
    lines = [f"r{k} = {code.number(b)}" for k, b in enumerate(baseline)]
    for trees in iterations:
        lines += [f"r{k} += {code.hgb(tree)}" for k, tree in enumerate(trees)]
    lines.append("return [" + ", ".join(f"r{k}" for k in range(len(baseline))) + "]")
    return code.function(lines)


def forest_function(trees: list[Mapping[str, list]], leaf) -> object:
    """The sum over trees of each leaf's (normalized) value vector, divided by the number of trees."""
    code = _TreeCode()
    width = len(trees[0]["value"][0])
    lines = [f"s{k} = 0.0" for k in range(width)]
    for tree in trees:
        lines.append(f"t = {code.forest(tree, [leaf(v) for v in tree['value']])}")
        lines += [f"s{k} += t[{k}]" for k in range(width)]
    lines.append("return [" + ", ".join(f"s{k} / {len(trees)}" for k in range(width)) + "]")
    return code.function(lines)
