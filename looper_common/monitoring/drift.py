"""Input drift of one day's decision-time features against a reference window.

Population stability index, PSI = sum_i (a_i - e_i) * ln(a_i / e_i), over the shares
``e`` (reference) and ``a`` (today) of each bin; shares are floored at ``EPS`` so an
empty bin adds a finite term. Numbers are binned at the reference's deciles; categories
are their own bins, with Pearson's chi-square statistic of today's counts against the
reference's shares per decision (Cramér's V squared times categories - 1) next to the
PSI. Conventional reading of the PSI: below 0.1 stable, above 0.25 shifted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from looper_common.contracts.blueprint import FeatureSpec
from looper_common.monitoring.metrics import Metric

EPS = 1e-4
BINS = 10


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two count (or share) vectors over the same bins."""
    e = np.maximum(np.asarray(expected, float) / max(float(np.sum(expected)), 1.0), EPS)
    a = np.maximum(np.asarray(actual, float) / max(float(np.sum(actual)), 1.0), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_psi(reference: np.ndarray, current: np.ndarray, bins: int = BINS) -> float:
    """PSI of ``current`` against ``reference``, binned at the reference's quantiles."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    return psi(np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1),
               np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1))


def category_psi(reference: Sequence[str], current: Sequence[str]) -> tuple[float, float, float]:
    """PSI, chi-square statistic per value and the share of ``current`` whose category the reference never saw."""
    ref_values, ref_counts = np.unique(np.asarray(reference, dtype=object), return_counts=True)
    cur_values, cur_counts = np.unique(np.asarray(current, dtype=object), return_counts=True)
    every = sorted(set(ref_values) | set(cur_values))
    ref = dict(zip(ref_values, ref_counts, strict=True))
    cur = dict(zip(cur_values, cur_counts, strict=True))
    e = np.array([ref.get(v, 0) for v in every], float)
    a = np.array([cur.get(v, 0) for v in every], float)
    unseen = float(sum(cur.get(v, 0) for v in every if v not in ref) / max(a.sum(), 1.0))
    shares = np.maximum(e / e.sum(), EPS)
    expected = shares / shares.sum() * a.sum()
    chi2 = float(np.sum((a - expected) ** 2 / expected) / a.sum()) if a.sum() else 0.0
    return psi(e, a), chi2, unseen


def feature_values(features: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """The logged value of feature ``name`` on every decision (null where it was not sent)."""
    return pc.map_lookup(features, pa.scalar(name), "first")


def _numbers(values: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """The finite numbers among ``values`` and how many values are missing or not numbers."""
    text = pc.fill_null(values, "")
    cleaned = pc.if_else(pc.match_substring_regex(text, r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"), text, None)
    numbers = pc.cast(cleaned, pa.float64()).to_numpy(zero_copy_only=False)
    finite = numbers[np.isfinite(numbers)]
    return finite, len(values) - len(finite)


def _categories(values: pa.ChunkedArray) -> tuple[list[str], int]:
    """The non-empty values and how many are missing (not sent, null or "")."""
    present = pc.drop_null(pc.if_else(pc.equal(values, ""), None, values))
    return present.to_pylist(), len(values) - len(present)


def feature_drift(
    features: Sequence[FeatureSpec], reference: pa.ChunkedArray, current: pa.ChunkedArray
) -> list[Metric]:
    """PSI, missing share and (categories) unseen share and chi-square statistic of every feature."""
    out: list[Metric] = []
    for spec in features:
        ref_values, cur_values = feature_values(reference, spec.name), feature_values(current, spec.name)
        if spec.type in ("float", "int"):
            ref, _ = _numbers(ref_values)
            cur, missing = _numbers(cur_values)
            drift = numeric_psi(ref, cur) if len(ref) and len(cur) else None
            out.append(Metric("feature_psi", drift, spec.name, f"{len(cur)} values vs {len(ref)} in the reference"))
        else:
            ref, _ = _categories(ref_values)
            cur, missing = _categories(cur_values)
            if ref and cur:
                drift, chi2, unseen = category_psi(ref, cur)
            else:
                drift, chi2, unseen = None, None, None
            out.append(Metric("feature_psi", drift, spec.name, f"{len(cur)} values vs {len(ref)} in the reference"))
            out.append(Metric("feature_chi2", chi2, spec.name, "chi-square statistic / values"))
            out.append(Metric("unseen_categories", unseen, spec.name))
        out.append(Metric("feature_missing", missing / len(cur_values) if len(cur_values) else None, spec.name))
    return out


def score_drift(actions: Sequence[str], reference: pa.ChunkedArray, current: pa.ChunkedArray) -> list[Metric]:
    """PSI of each action's logged score (decisions served by a policy) against the reference window."""
    out = []
    for action in actions:
        ref = pc.drop_null(pc.map_lookup(reference, pa.scalar(action), "first")).to_numpy(zero_copy_only=False)
        cur = pc.drop_null(pc.map_lookup(current, pa.scalar(action), "first")).to_numpy(zero_copy_only=False)
        value = numeric_psi(ref, cur) if len(ref) and len(cur) else None
        out.append(Metric("score_psi", value, action, f"{len(cur)} scores vs {len(ref)} in the reference"))
    return out
