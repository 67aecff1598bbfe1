"""Uplift learners: the effect of treating a unit, for ``policy: {type: uplift}`` blueprints.

The blueprint's first action is the treatment, the second the control. Each learner
estimates the control outcome mu0(x) and the individual effect tau(x) from logged,
randomized decisions, and is a scikit-learn estimator over the usual model frame
(features plus ``action``): it predicts the outcome under the row's action,
mu0(x) + [action == treatment] * tau(x), so scoring, policies, the registry and
publishing use it exactly like any other model.

- S-learner: one outcome model f(x, action); tau(x) = f(x, treat) - f(x, control).
- T-learner: one outcome model per arm; tau(x) = mu1(x) - mu0(x).
- X-learner (Kuenzel et al. 2019): T-learner outcome models, then imputed effects
  D1 = Y - mu0(x) on treated rows and D0 = mu1(x) - Y on control rows, each regressed
  on x; tau(x) = g * tau0(x) + (1 - g) * tau1(x) with g the mean logged P(treatment).
- DR-learner (Kennedy 2023): two-fold cross-fitted mu0, mu1 and the logged
  propensity e(x) = P(treatment | x) give the AIPW pseudo-outcome
  phi = mu1 - mu0 + W (Y - mu1) / e - (1 - W) (Y - mu0) / (1 - e), regressed on x.

Base models are ``model_families.build_model`` pipelines (categories ordinal-encoded
for gradient boosting, one-hot for linear models), outcome models of the blueprint's
task and effect models as regressions. The qini/AUUC/PEHE metrics are in
``uplift_metrics`` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from looper_common.training.families import build_model
from looper_common.training.uplift_metrics import auuc, pehe, qini_coefficient, qini_curve, qini_figure

__all__ = [
    "BASE_PARAMS", "LEARNERS", "DRLearner", "SLearner", "TLearner", "UpliftLearner", "XLearner",
    "auuc", "build_learner", "pehe", "qini_coefficient", "qini_curve", "qini_figure",
    "treatment_propensity",
]

# Fixed, moderate base-model settings: the learners are compared with each other on the
# held-out Qini, not tuned one by one (that would multiply the training time by max_evals).
BASE_PARAMS: dict[str, dict[str, object]] = {
    "hist_gbdt": {"learning_rate": 0.1, "max_leaf_nodes": 16, "min_samples_leaf": 40, "l2_regularization": 0.1},
    "random_forest": {"n_estimators": 100, "max_depth": 8, "min_samples_leaf": 20},
    "logistic": {"C": 1.0, "interactions": True},
    "linear": {"alpha": 1.0, "interactions": True},
}
PROPENSITY_CLIP = 0.01  # keeps 1/e finite if a logged propensity is extreme
MIN_ARM_ROWS = 20
# A learner fits up to seven small models; OpenMP's spin-waiting threads made each
# HistGradientBoosting fit ~10x slower than one thread on a loaded 2-core machine.
FIT_THREADS = 1


def treatment_propensity(action: np.ndarray, propensity: np.ndarray, treatment: str) -> np.ndarray:
    """P(treatment | x) per logged decision, from the logged propensity of the served action."""
    served = np.asarray(propensity, dtype="float64")
    return np.where(np.asarray(action).astype(str) == treatment, served, 1.0 - served)


class UpliftLearner(BaseEstimator):
    """Predicts the outcome under the row's ``action`` as mu0(x) + [action == treatment] * tau(x).

    Args:
        treatment, control: the two action names (the blueprint's first and second).
        task: ``binary`` (outcome models are classifiers) or ``regression``.
        categorical, numeric: feature columns of the model frame, by kind.
        family: base model family of ``model_families`` (``hist_gbdt``...).
    """

    learner: ClassVar[str] = ""

    def __init__(self, treatment: str = "treat", control: str = "control", task: str = "binary",
                 categorical: Sequence[str] = (), numeric: Sequence[str] = (), family: str = "hist_gbdt"):
        self.treatment = treatment
        self.control = control
        self.task = task
        self.categorical = categorical
        self.numeric = numeric
        self.family = family

    # -- the estimator interface the rest of Looper uses -------------------------------

    def fit(self, X: pd.DataFrame, y: np.ndarray, propensity: np.ndarray | None = None) -> UpliftLearner:
        """Fit on logged rows; ``propensity`` is the logged probability of each row's served action.

        Without it, assignment is taken as uniform at the observed treated share.
        """
        if self.task not in ("binary", "regression"):
            raise ValueError(f"uplift learners support binary and regression tasks, not {self.task!r}")
        w = self._treated(X)
        y = np.asarray(y, dtype="float64")
        for arm, rows in (("treatment", w), ("control", ~w)):
            if rows.sum() < MIN_ARM_ROWS:
                raise ValueError(f"{int(rows.sum())} {arm} rows, need {MIN_ARM_ROWS}")
            if self.task == "binary" and len(np.unique(y[rows])) < 2:
                raise ValueError(f"a single outcome class among the {arm} rows")
        if propensity is None:
            e = np.full(len(w), w.mean())
        else:
            e = treatment_propensity(X["action"].to_numpy(), propensity, self.treatment)
        e = np.clip(e, PROPENSITY_CLIP, 1.0 - PROPENSITY_CLIP)
        with threadpool_limits(limits=FIT_THREADS, user_api="openmp"):
            self._fit(self._features(X), y, w, e)
        if self.task == "binary":
            self.classes_ = np.array([0, 1])
        return self

    def predict_uplift(self, X: pd.DataFrame) -> np.ndarray:
        """tau(x): expected outcome if treated minus if not (the row's action is ignored)."""
        return self._tau(self._features(X))

    def predict_control(self, X: pd.DataFrame) -> np.ndarray:
        """mu0(x): expected outcome under the control action."""
        return self._mu0(self._features(X))

    def predict_outcome(self, X: pd.DataFrame) -> np.ndarray:
        """Expected outcome under each row's ``action``."""
        features = self._features(X)
        return self._mu0(features) + self._treated(X) * self._tau(features)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Binary: [P(y=0), P(y=1)] under the row's action; mu0 + tau is clipped into [0, 1]."""
        if self.task != "binary":
            raise AttributeError("predict_proba is only available for binary outcomes")
        p = np.clip(self.predict_outcome(X), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.task == "binary":
            return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
        return self.predict_outcome(X)

    # -- what each learner provides ----------------------------------------------------

    def _fit(self, x: pd.DataFrame, y: np.ndarray, w: np.ndarray, e: np.ndarray) -> None:
        raise NotImplementedError

    def _mu0(self, x: pd.DataFrame) -> np.ndarray:
        return self._outcome(self.mu0_, x)

    def _tau(self, x: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------------

    def _features(self, X: pd.DataFrame) -> pd.DataFrame:
        return X[[*self.categorical, *self.numeric]]

    def _treated(self, X: pd.DataFrame) -> np.ndarray:
        action = X["action"].astype(str).to_numpy()
        unknown = set(np.unique(action)) - {self.treatment, self.control}
        if unknown:
            raise ValueError(f"actions {sorted(unknown)} are neither {self.treatment!r} nor {self.control!r}")
        return action == self.treatment

    def _outcome_model(self, categorical: Sequence[str] | None = None) -> object:
        params = {"family": self.family, **BASE_PARAMS[self.family]}
        return build_model(params, self.task, list(categorical or self.categorical), list(self.numeric))

    def _effect_model(self) -> object:
        params = {"family": self.family, **BASE_PARAMS[self.family]}
        return build_model(params, "regression", list(self.categorical), list(self.numeric))

    def _fit_outcome(self, x: pd.DataFrame, y: np.ndarray) -> object:
        model = self._outcome_model()
        return model.fit(x, (y > 0).astype(int) if self.task == "binary" else y)

    def _outcome(self, model: object, x: pd.DataFrame) -> np.ndarray:
        if self.task == "binary":
            return model.predict_proba(x)[:, 1]
        return np.asarray(model.predict(x), dtype="float64")


class SLearner(UpliftLearner):
    """One outcome model with the action as a feature."""

    learner = "s"

    def _fit(self, x, y, w, e) -> None:
        model = self._outcome_model([*self.categorical, "action"])
        frame = x.assign(action=np.where(w, self.treatment, self.control))
        self.model_ = model.fit(frame, (y > 0).astype(int) if self.task == "binary" else y)

    def _under(self, x: pd.DataFrame, action: str) -> np.ndarray:
        return self._outcome(self.model_, x.assign(action=action))

    def _mu0(self, x):
        return self._under(x, self.control)

    def _tau(self, x):
        return self._under(x, self.treatment) - self._under(x, self.control)


class TLearner(UpliftLearner):
    """One outcome model per arm."""

    learner = "t"

    def _fit(self, x, y, w, e) -> None:
        self.mu0_ = self._fit_outcome(x[~w], y[~w])
        self.mu1_ = self._fit_outcome(x[w], y[w])

    def _tau(self, x):
        return self._outcome(self.mu1_, x) - self._outcome(self.mu0_, x)


class XLearner(UpliftLearner):
    """T-learner outcome models, then the imputed effects of each arm regressed on x."""

    learner = "x"

    def _fit(self, x, y, w, e) -> None:
        self.mu0_ = self._fit_outcome(x[~w], y[~w])
        self.mu1_ = self._fit_outcome(x[w], y[w])
        imputed_treated = y[w] - self._outcome(self.mu0_, x[w])
        imputed_control = self._outcome(self.mu1_, x[~w]) - y[~w]
        self.tau1_ = self._effect_model().fit(x[w], imputed_treated)
        self.tau0_ = self._effect_model().fit(x[~w], imputed_control)
        # Kuenzel's g(x) = e(x); assignment is randomized, so its mean is a fine weight
        # (any g in [0, 1] keeps the estimate consistent).
        self.g_ = float(np.mean(e))

    def _tau(self, x):
        return self.g_ * self.tau0_.predict(x) + (1.0 - self.g_) * self.tau1_.predict(x)


class DRLearner(UpliftLearner):
    """Cross-fitted AIPW pseudo-outcomes with the logged propensities, regressed on x."""

    learner = "dr"
    folds: ClassVar[int] = 2

    def _fit(self, x, y, w, e) -> None:
        mu0, mu1 = np.empty(len(y)), np.empty(len(y))
        for fit_rows, held in KFold(self.folds, shuffle=True, random_state=0).split(x):
            fw = w[fit_rows]
            m0 = self._fit_outcome(x.iloc[fit_rows[~fw]], y[fit_rows[~fw]])
            m1 = self._fit_outcome(x.iloc[fit_rows[fw]], y[fit_rows[fw]])
            mu0[held] = self._outcome(m0, x.iloc[held])
            mu1[held] = self._outcome(m1, x.iloc[held])
        pseudo = mu1 - mu0 + w * (y - mu1) / e - (~w) * (y - mu0) / (1.0 - e)
        self.tau_ = self._effect_model().fit(x, pseudo)
        self.mu0_ = self._fit_outcome(x[~w], y[~w])  # on all control rows, for predictions

    def _tau(self, x):
        return np.asarray(self.tau_.predict(x), dtype="float64")


LEARNERS: dict[str, type[UpliftLearner]] = {c.learner: c for c in (SLearner, TLearner, XLearner, DRLearner)}


def build_learner(name: str, actions: Sequence[str], task: str, categorical: Sequence[str],
                  numeric: Sequence[str], family: str = "hist_gbdt") -> UpliftLearner:
    """An unfitted learner by name (``s``, ``t``, ``x``, ``dr``); ``actions`` = (treatment, control)."""
    if name not in LEARNERS:
        raise ValueError(f"unknown uplift learner {name!r} (known: {', '.join(LEARNERS)})")
    if family not in BASE_PARAMS:
        raise ValueError(f"unknown model family {family!r}")
    treatment, control = actions
    return LEARNERS[name](treatment=treatment, control=control, task=task,
                          categorical=tuple(categorical), numeric=tuple(numeric), family=family)
