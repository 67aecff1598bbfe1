"""The blueprint's monitoring: and holdback: sections: defaults, overrides, and errors naming the field."""

from __future__ import annotations

import pytest

from looper_common.contracts.blueprint import DEFAULT_THRESHOLDS, BlueprintError, parse_blueprint
from tests.conftest import make_blueprint


def _data(**sections):
    return {**make_blueprint().model_dump(mode="json"), **sections}


def test_defaults_and_overrides():
    bp = make_blueprint()
    assert bp.monitoring.threshold("feature_psi") == DEFAULT_THRESHOLDS["feature_psi"]
    assert bp.holdback is None
    bp = parse_blueprint(_data(monitoring={"thresholds": {"feature_psi": {"warn": 0.3}}}, holdback={"share": 0.05}))
    assert (bp.monitoring.threshold("feature_psi").warn, bp.monitoring.threshold("feature_psi").critical) == (0.3, None)
    assert bp.holdback.share == 0.05 and bp.version != make_blueprint().version


@pytest.mark.parametrize(("sections", "message"), [
    ({"monitoring": {"thresholds": {"feature_pis": {"warn": 1}}}}, "monitoring.thresholds.feature_pis"),
    ({"monitoring": {"thresholds": {"feature_psi": {"warning": 1}}}}, "monitoring.thresholds.feature_psi.warning"),
    ({"monitoring": {"reference_days": 0}}, "monitoring.reference_days"),
    ({"holdback": {"share": 1.0}}, "holdback.share"),
])
def test_a_bad_section_names_the_field(sections, message):
    with pytest.raises(BlueprintError, match=message.replace(".", r"\.")):
        parse_blueprint(_data(**sections), "test")
