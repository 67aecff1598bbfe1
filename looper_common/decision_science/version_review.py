"""What a reviewer sees on a model version's page in the MLflow UI: links, lift, verdict, policy params.

``evaluate_models`` tags the version it judged with its evaluation run and report, the
OPE lift with its interval and the promotion verdict; ``tune_policy`` tags the champion
with its tuning run and report (besides ``policy_params``). The version's description is
then rewritten from those tags as Markdown, which the UI renders: the verdict, the lift,
the policy params as a table, and links to the reports. The links are relative to the
tracking server's UI (``#/experiments/<id>/runs/<run>/artifactPath/<file>``), so they
work wherever the server runs; the ``*_report`` tags hold the same as ``runs:/`` URIs.
"""

from __future__ import annotations

import json

import mlflow

from looper_common.decision_science.evaluation import PromotionVerdict

EVALUATION_TAGS = ("evaluation_run_id", "evaluation_report", "evaluation_report_url", "evaluation_date",
                   "promotion_verdict", "promotion_reason", "ope_lift_dr", "ope_lift_dr_interval")
TUNING_TAGS = ("policy_tuning_report", "policy_tuning_report_url")


def artifact_url(experiment_id: str, run_id: str, path: str) -> str:
    """The MLflow UI's page of one run artifact, relative to the tracking server."""
    return f"#/experiments/{experiment_id}/runs/{run_id}/artifactPath/{path}"


def evaluation_tags(experiment_id: str, run_id: str, report_path: str, verdict: PromotionVerdict,
                    outcome: str, run_date: str) -> dict[str, str]:
    """The tags ``evaluate_models`` sets on the version it judged (``outcome``: promoted, promotable or kept)."""
    lift = {k: verdict.metrics.get(f"ope.challenger.lift_dr{k}") for k in ("", "_lower", "_upper")}
    has_lift = lift[""] is not None
    return {
        "evaluation_run_id": run_id,
        "evaluation_report": f"runs:/{run_id}/{report_path}",
        "evaluation_report_url": artifact_url(experiment_id, run_id, report_path),
        "evaluation_date": run_date,
        "promotion_verdict": outcome,
        "promotion_reason": verdict.reason,
        "ope_lift_dr": f"{lift['']:+.4f}" if has_lift else "not estimated",
        "ope_lift_dr_interval": f"{lift['_lower']:+.4f}..{lift['_upper']:+.4f}" if has_lift else "not estimated",
    }


def tuning_tags(experiment_id: str, run_id: str, report_path: str = "report_policy.html") -> dict[str, str]:
    """The tags ``tune_policy`` sets on the champion besides ``policy_params``."""
    return {"policy_tuning_report": f"runs:/{run_id}/{report_path}",
            "policy_tuning_report_url": artifact_url(experiment_id, run_id, report_path)}


def describe(tags: dict[str, str]) -> str:
    """The version's description (Markdown) from its tags."""
    lines = []
    if "promotion_verdict" in tags:
        lines += [f"**Promotion verdict ({tags.get('evaluation_date', '?')}): {tags['promotion_verdict']}**. "
                  f"{tags.get('promotion_reason', '')}", "",
                  f"- OPE lift (DR): {tags.get('ope_lift_dr')}, interval {tags.get('ope_lift_dr_interval')}",
                  f"- Evaluation report: [{tags['evaluation_report'].rsplit('/', 1)[-1]}]"
                  f"({tags['evaluation_report_url']}) (run `{tags['evaluation_run_id']}`)"]
    if "policy_params" in tags:
        params = json.loads(tags["policy_params"])
        lines += ["", f"**Policy params** (served by publish_policies; tuned {tags.get('policy_tuned_date', '?')}):",
                  "", "| param | value |", "|---|---|",
                  *(f"| {k} | {json.dumps(v)} |" for k, v in sorted(params.items()))]
        if "policy_tuning_report_url" in tags:
            lines += ["", f"- Tuning report: [report_policy.html]({tags['policy_tuning_report_url']}) "
                          f"(run `{tags.get('policy_tuning_run_id', '?')}`)"]
    return "\n".join(lines).strip()


def review_version(name: str, version: str, tags: dict[str, str]) -> str:
    """Set ``tags`` on the version and rewrite its description from all its tags; returns the description."""
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    description = describe(dict(client.get_model_version(name, version).tags))
    client.update_model_version(name, version, description=description)
    return description
