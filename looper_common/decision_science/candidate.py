"""``looper evaluate-policy``: the off-policy value of a candidate policy on the logged decisions.

The logged decisions are the blueprint's matured examples (``silver/examples``: each
decision with its logged action, propensity and labels, after ``join_feedback``),
imported or live. The candidate is one of:

- ``model``: the blueprint's policy over the registered champion model(s), with the
  champion's tuned ``policy_params`` (else the blueprint's), what ``publish_policies`` serves;
- a JSON file of policy params (``{"threshold": 0.3}``): the blueprint's policy over
  the champion model(s) with those params;
- a CSV or Parquet file with ``decision_id`` and either ``action`` (a deterministic
  choice) or ``prob_<action>`` for every action (a distribution), one row per decision.

IPS and SNIPS always run; DM and DR also when the objective label has a registered
champion, used as the reward model. Intervals are ``ope``'s bootstrap; the lift is over
the logged policy. The HTML report is ``report.html_report``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from looper_common.contracts.blueprint import Blueprint
from looper_common.decision_science import ope, report
from looper_common.decision_science.evaluation import logged_probabilities, reward_of
from looper_common.decision_science.logged import policy_column
from looper_common.decision_science.policies import policy_scores, score_actions, target_probabilities
from looper_common.lake.engine import Lake
from looper_common.training.examples import load_training_frame

CANDIDATE = "candidate"


class CandidateError(ValueError):
    """The candidate policy or the logged decisions cannot be evaluated; says why."""


@dataclass(frozen=True)
class CandidateEvaluation:
    result: ope.OPEResult
    decisions: int
    first_date: date
    last_date: date
    policy: str
    html: str


def logged_examples(lake: Lake, blueprint: Blueprint, since: date | None, until: date | None) -> pd.DataFrame:
    """The matured decisions with their labels, one row per decision, between the dates (inclusive)."""
    frame = load_training_frame(lake, blueprint, until or date.max, lookback_days=None).frame
    if since is not None:
        frame = frame[frame["matured_date"] >= since]
    if frame.empty:
        raise CandidateError(f"{blueprint.name}: no matured decisions in silver/examples "
                             f"(import them, then run join_feedback for their days)")
    return frame.reset_index(drop=True)


def file_probabilities(path: Path, logged: pd.DataFrame, blueprint: Blueprint) -> np.ndarray:
    """A candidate file's probability of every action for each logged decision, in blueprint order."""
    actions = list(blueprint.decision.actions)
    table = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
    if "decision_id" not in table.columns:
        raise CandidateError(f"{path}: no decision_id column")
    table = table.drop_duplicates("decision_id").set_index(table["decision_id"].astype(str))
    missing = logged["decision_id"].astype(str)[~logged["decision_id"].astype(str).isin(table.index)]
    if len(missing):
        raise CandidateError(f"{path}: no row for {len(missing)} logged decision(s), e.g. {missing.iloc[0]}")
    rows = table.loc[logged["decision_id"].astype(str)]
    if all(f"prob_{a}" in rows.columns for a in actions):
        probs = rows[[f"prob_{a}" for a in actions]].to_numpy(dtype="float64")
    elif "action" in rows.columns:
        unknown = sorted(set(rows["action"]) - set(actions))
        if unknown:
            raise CandidateError(f"{path}: actions {unknown} are not the blueprint's {actions}")
        probs = np.array([[float(a == chosen) for a in actions] for chosen in rows["action"]])
    else:
        raise CandidateError(f"{path}: needs an action column or prob_<action> for each of {actions}")
    sums = probs.sum(axis=1)
    if (probs < 0).any() or not np.allclose(sums, 1.0, atol=1e-6):
        bad = int(((probs < 0).any(axis=1) | ~np.isclose(sums, 1.0, atol=1e-6)).sum())
        raise CandidateError(f"{path}: {bad} row(s) whose probabilities are negative or do not sum to 1")
    return probs


def evaluate_candidate(
    lake: Lake, blueprint: Blueprint, policy: str, models: dict[str, object], *, params: dict | None = None,
    since: date | None = None, until: date | None = None, n_bootstrap: int = 200, seed: int = 0,
) -> CandidateEvaluation:
    """OPE of the candidate ``policy`` (``model`` or a file) against the logged policy.

    ``models`` are the champion models by label (empty when none is registered); ``params``
    the champion's tuned params for ``model``.
    """
    logged = logged_examples(lake, blueprint, since, until)
    label = blueprint.objectives.maximize
    actions = list(blueprint.decision.actions)
    index = logged["action"].map({a: i for i, a in enumerate(actions)})
    columns: dict[str, np.ndarray] = {
        "decision_id": logged["decision_id"].astype(str).to_numpy(),
        "action_index": index.to_numpy(dtype="int32"),
        "propensity": logged["propensity"].to_numpy(dtype="float64"),
        "reward": reward_of(logged, blueprint, label),
        policy_column("logged"): logged_probabilities(logged, blueprint),
    }
    path = Path(policy)
    if policy == "model" or path.suffix.lower() == ".json":
        if label not in models:
            raise CandidateError(f"{blueprint.name}: --policy {policy} needs a registered champion of "
                                 f"{label!r} (run train_models and evaluate_models)")
        if policy != "model":
            params = {**blueprint.policy.params, **json.loads(path.read_text())}
        scores = policy_scores(models, logged, blueprint, params)
        columns[policy_column(CANDIDATE)] = target_probabilities(scores, blueprint, params)
    else:
        columns[policy_column(CANDIDATE)] = file_probabilities(path, logged, blueprint)
    if label in models:
        columns["q_hat"] = score_actions(models[label], logged, blueprint, label)
    result = ope.evaluate(columns, ["logged", CANDIDATE], q_hat="q_hat" if "q_hat" in columns else None,
                          baseline="logged", clip=blueprint.promotion.clip, n_bootstrap=n_bootstrap, seed=seed)
    first, last = min(logged["matured_date"]), max(logged["matured_date"])
    described = policy if policy == "model" else path.name
    html = report.html_report(
        f"{blueprint.name}: candidate policy {described} vs the logged policy",
        [("Off-policy value", report.ope_section(result, estimator="dr" if "q_hat" in columns else "snips"))],
        {"decisions": len(logged), "matured": f"{first} .. {last}", "policy": described,
         "params": json.dumps(params) if params else "", "reward": label,
         "reward model (DM, DR)": "champion" if "q_hat" in columns else "none registered: IPS and SNIPS only"},
    )
    return CandidateEvaluation(result, len(logged), first, last, described, html)
