"""The challenger on live traffic, next to OPE: its shadow logs and its canary's outcomes.

``evaluate_models`` joins the held-out examples with their bronze decisions' challenger
fields (``events.ROLLOUT_FIELDS``), kept to this challenger's version (the model
version in the logged policy version, ``publish.model_version_of``):

* shadow: on the decisions the champion served, the challenger's exact action (not a
  model's guess at it) is a deterministic target policy; its value is estimated with
  the champion's logged propensities (``ope.evaluate``: IPS, SNIPS, DM, DR), beside
  the OPE of the challenger's model on the same decisions.
* canary: the decisions the canary served are on-policy, so their mean reward is the
  challenger's value, with a bootstrap interval over hash buckets
  (``bootstrap.decision_hashes``); the champion's served decisions give its mean, and
  the lift's interval resamples both with the same bucket draws.

``promotion.require_canary: {min_decisions: N}`` keeps the champion until the canary
has served N held-out decisions (:func:`canary_gate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from looper_common.contracts import events
from looper_common.contracts.blueprint import Blueprint
from looper_common.decision_science import ope
from looper_common.decision_science.bootstrap import Interval, assign_buckets, decision_hashes, interval
from looper_common.decision_science.evaluation import PromotionVerdict, ope_columns, ope_metrics, reward_of
from looper_common.decision_science.ope import policy_column
from looper_common.lake.engine import Lake, blueprint_dates
from looper_common.lake.tables import BRONZE_DECISIONS
from looper_common.publishing.publish import model_version_of

LIVE_COLUMNS = ["decision_id", "variant", "shadow_version", "shadow_action"]
BUCKETS = 256


def with_live_fields(lake: Lake, blueprint: Blueprint, holdout: pd.DataFrame) -> pd.DataFrame:
    """``holdout`` with its decisions' ``variant``, ``shadow_version`` and ``shadow_action`` (null if none)."""
    days = pd.to_datetime(holdout["ts"], utc=True).dt.date
    read = lake.read(BRONZE_DECISIONS, columns=LIVE_COLUMNS,
                     filters=blueprint_dates(blueprint.name, days.min(), days.max())).table.to_pandas()
    return holdout.merge(read.drop_duplicates("decision_id"), on="decision_id", how="left")


def _of(frame: pd.DataFrame, column: str, challenger: str) -> pd.Series:
    return frame[column].map(model_version_of) == str(challenger)


def shadow_ope(
    frame: pd.DataFrame, blueprint: Blueprint, label: str, challenger: str, models: dict[str, object], *,
    n_bootstrap: int, seed: int = 0,
) -> ope.OPEResult | None:
    """OPE of the shadow's logged actions and of the challenger's model, on its shadowed decisions."""
    rows = frame[frame["shadow_action"].notna() & _of(frame, "shadow_version", challenger)]
    if rows.empty:
        return None
    columns = ope_columns(rows, blueprint, {"challenger": ({label: models["challenger"]}, None)},
                          reward_model=models["challenger"], label=label)
    actions = np.asarray(blueprint.decision.actions, dtype=object)
    columns[policy_column("shadow")] = (rows["shadow_action"].to_numpy(dtype=object)[:, None] == actions).astype(float)
    return ope.evaluate(columns, ["logged", "challenger", "shadow"], baseline="logged",
                        clip=blueprint.promotion.clip, n_bootstrap=n_bootstrap, seed=seed)


@dataclass(frozen=True)
class CanaryEvidence:
    """On-policy mean reward of the canary and of the champion's served decisions, and the lift."""

    decisions: int  # held-out decisions the canary served
    champion_decisions: int
    canary: Interval | None
    champion: Interval | None
    lift: Interval | None

    def metrics(self) -> dict[str, float]:
        out = {"canary.decisions": float(self.decisions), "canary.champion_decisions": float(self.champion_decisions)}
        for name, iv in (("mean", self.canary), ("champion_mean", self.champion), ("lift", self.lift)):
            if iv is not None:
                out.update({f"canary.{name}": iv.value, f"canary.{name}_lower": iv.lower,
                            f"canary.{name}_upper": iv.upper})
        return out


def canary_evidence(
    frame: pd.DataFrame, blueprint: Blueprint, label: str, challenger: str, *,
    n_bootstrap: int, seed: int = 0, alpha: float = 0.05,
) -> CanaryEvidence:
    """The canary's and the champion's mean reward on held-out decisions, with bootstrap intervals."""
    reward = reward_of(frame, blueprint, label)
    canary = ((frame["variant"] == events.CANARY) & _of(frame, "policy_version", challenger)).to_numpy()
    champion = (frame["variant"].isna() & ~frame["is_default"].astype(bool)).to_numpy()
    n_canary, n_champion = int(canary.sum()), int(champion.sum())
    if not n_canary:
        return CanaryEvidence(0, n_champion, None, None, None)
    bucket = assign_buckets(decision_hashes(frame["decision_id"].astype(str).to_numpy()), BUCKETS, seed)
    draws = np.random.default_rng(seed).multinomial(BUCKETS, np.full(BUCKETS, 1.0 / BUCKETS), size=n_bootstrap)

    def mean(mask: np.ndarray) -> tuple[float, np.ndarray]:
        sums = np.bincount(bucket[mask], weights=reward[mask], minlength=BUCKETS)
        counts = np.bincount(bucket[mask], minlength=BUCKETS).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(sums.sum() / counts.sum()), (draws @ sums) / (draws @ counts)

    value, replicas = mean(canary)
    canary_iv = interval(value, replicas, alpha)
    if not n_champion:
        return CanaryEvidence(n_canary, 0, canary_iv, None, None)
    base, base_replicas = mean(champion)
    return CanaryEvidence(n_canary, n_champion, canary_iv, interval(base, base_replicas, alpha),
                          interval(value - base, replicas - base_replicas, alpha))


def canary_gate(blueprint: Blueprint, evidence: CanaryEvidence | None, verdict: PromotionVerdict) -> PromotionVerdict:
    """``verdict`` unless ``require_canary`` is unmet; the reason names the canary evidence either way."""
    metrics = {**verdict.metrics, **(evidence.metrics() if evidence else {})}
    required = blueprint.promotion.require_canary
    n = evidence.decisions if evidence else 0
    text = f"canary served {n} held-out decisions"
    if evidence and evidence.lift is not None:
        lift = evidence.lift
        text += f", on-policy lift over the champion {lift.value:+.4f} ({lift.lower:+.4f}..{lift.upper:+.4f})"
    if required is not None and n < required.min_decisions:
        return PromotionVerdict(False, f"{text}, fewer than require_canary.min_decisions "
                                       f"{required.min_decisions}: kept ({verdict.reason})", metrics)
    if required is None and not n:
        return PromotionVerdict(verdict.promote, verdict.reason, metrics)
    return PromotionVerdict(verdict.promote, f"{verdict.reason}; {text}", metrics)


def live_sections(
    lake: Lake, blueprint: Blueprint, label: str, holdout: pd.DataFrame, models: dict[str, object],
    challenger: str, verdict: PromotionVerdict, *, n_bootstrap: int,
) -> tuple[PromotionVerdict, list[tuple[str, str]]]:
    """The verdict after :func:`canary_gate`, and the report's shadow and canary sections."""
    from looper_common.decision_science import report

    frame = with_live_fields(lake, blueprint, holdout)
    sections = []
    shadow = shadow_ope(frame, blueprint, label, challenger, models, n_bootstrap=n_bootstrap)
    if shadow is not None:
        shadowed = frame["shadow_action"].notna() & _of(frame, "shadow_version", challenger)
        agree = (frame["shadow_action"] == frame["action"])[shadowed].mean()
        sections.append((f"Shadow: the challenger's logged actions on live traffic ({label})",
                         f"<p class='meta'>policy <b>shadow</b> is the challenger's exact action on each "
                         f"decision the champion served; <b>challenger</b> is the OPE of its model on the same "
                         f"decisions; the served action equals the shadow's on {agree:.1%} of them.</p>"
                         + report.ope_section(shadow)))
        verdict.metrics.update({f"shadow.{k.removeprefix('ope.')}": v for k, v in ope_metrics(shadow).items()})
    evidence = canary_evidence(frame, blueprint, label, challenger, n_bootstrap=n_bootstrap)
    if evidence.decisions or blueprint.promotion.stage == "canary" or blueprint.promotion.require_canary:
        rows = [{"policy": name, "decisions": n, "mean": iv.value if iv else None,
                 "interval": f"{iv.lower:.4f} .. {iv.upper:.4f}" if iv else ""}
                for name, n, iv in (("canary (challenger)", evidence.decisions, evidence.canary),
                                    ("champion (served)", evidence.champion_decisions, evidence.champion),
                                    ("lift", evidence.decisions, evidence.lift))]
        sections.append((f"Canary: on-policy {label} of the challenger's share", report.table(rows)))
    return canary_gate(blueprint, evidence, verdict), sections

