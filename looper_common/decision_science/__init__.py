"""Decision science: off-policy evaluation, policies, promotion and policy tuning."""

from __future__ import annotations

from looper_common._exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    ope="evaluate OPEResult",
    policies="policy_frame",
    policy_tuning="tune",
    evaluation="evaluate_policies",
    promotion_run="evaluate_models EvaluationRun",
    tuning_run="tune_policy TuningRun",
)
