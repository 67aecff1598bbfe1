"""Decision science: off-policy evaluation, policies, promotion and policy tuning."""

from __future__ import annotations

from looper_common._exports import lazy_exports

_EXPORTS = {
    "evaluate": "ope",
    "OPEResult": "ope",
    "policy_frame": "policies",
    "tune": "policy_tuning",
    "evaluate_policies": "evaluation",
    "evaluate_models": "promotion_run",
    "EvaluationRun": "promotion_run",
    "tune_policy": "tuning_run",
    "TuningRun": "tuning_run",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
