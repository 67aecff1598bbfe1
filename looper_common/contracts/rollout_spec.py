"""How a challenger reaches live traffic before it is promoted: ``shadow`` or ``canary`` (DESIGN.md §6).

These specs sit in a blueprint's ``promotion:`` section::

    promotion:
      stage: canary            # none (default) | shadow | canary
      canary: {share: 0.1}     # canary only: the stable hashed share of units it serves
      require_canary: {min_decisions: 500}   # evaluate_models keeps the champion without this evidence

``shadow``: ``publish_policies`` also publishes the objective's challenger, without
switching the active pointer; the SDK scores it for every decision it serves and logs
its action and scores (``shadow_*`` event fields) while serving the champion.
``canary``: the units whose holdback draw (``sdk.holdback.holdback_draw``) is in the
top ``share`` of [0, 1) are served the challenger (event field ``variant: canary``);
a holdback takes the bottom of the same draw, so both are disjoint while their shares
sum to at most 1.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Stage = Literal["none", "shadow", "canary"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CanarySpec(_Strict):
    """The share of units (stable, hashed) served the challenger."""

    share: float = Field(gt=0.0, lt=1.0)


class CanaryEvidence(_Strict):
    """What ``evaluate_models`` needs from the canary before it may promote the challenger."""

    min_decisions: int = Field(ge=1)  # canary decisions of this challenger among the held-out examples
