"""Exploration around a policy's choice, replayable from the decision id.

The uniform draw that picks the action is a hash of the decision id, so anyone
holding a logged decision (its id and action distribution) can replay the choice
exactly (:func:`replay`). Every action keeps a probability of at least the spec's floor.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

from looper_common.contracts.blueprint import ExplorationSpec

_TWO_64 = float(1 << 64)


def uniform_from_id(decision_id: str) -> float:
    """A uniform number in [0, 1) derived from the decision id."""
    digest = hashlib.blake2b(decision_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _TWO_64


def action_distribution(
    spec: ExplorationSpec,
    actions: Sequence[str],
    greedy_action: str,
    scores: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Probability of each action under the exploration spec around ``greedy_action``."""
    k = len(actions)
    if spec.type == "softmax" and scores:
        top = max(scores.get(a, 0.0) for a in actions)
        weights = [math.exp((scores.get(a, 0.0) - top) / spec.temperature) for a in actions]
        total = sum(weights)
        probs = [w / total for w in weights]
    else:
        eps = spec.epsilon if spec.type != "none" else 0.0
        probs = [(1.0 - eps) * (a == greedy_action) + eps / k for a in actions]
    if spec.floor > 0.0:
        floor = min(spec.floor, 1.0 / k)
        lifted = [max(p, floor) for p in probs]
        excess = sum(lifted) - 1.0
        above = sum(p - floor for p in lifted if p > floor)
        probs = [p - (p - floor) * excess / above if p > floor else p for p in lifted]
    return dict(zip(actions, probs, strict=True))


def draw_action(decision_id: str, probs: Mapping[str, float]) -> str:
    """Pick an action from ``probs`` with the decision id's own uniform draw."""
    u = uniform_from_id(decision_id)
    cumulative = 0.0
    chosen = None
    for action, p in probs.items():
        if p <= 0.0:
            continue
        chosen = action
        cumulative += p
        if u < cumulative:
            return action
    return chosen  # u landed in float rounding above the last cumulative sum


def replay(decision: Mapping[str, object], actions: Sequence[str] | None = None) -> str:
    """The action a logged decision must have taken: its id's draw from its logged distribution.

    ``decision`` is a decision event or row (``decision_id``, ``action_probs``). The draw
    walks the distribution in the blueprint's action order, which is the order the SDK
    logs it in; pass the blueprint's ``actions`` when the mapping may have lost that
    order (a map column read back from a table, for instance).
    """
    probs = decision["action_probs"]
    if not isinstance(probs, Mapping):
        raise TypeError(f"action_probs must be a mapping, got {type(probs).__name__}")
    if actions is not None:  # the blueprint's order first, anything else after, as logged
        probs = {**{a: probs[a] for a in actions if a in probs}, **probs}
    action = draw_action(str(decision["decision_id"]), probs)
    if action is None:
        raise ValueError(f"decision {decision['decision_id']}: no action has a positive probability")
    return action


def replay_matches(decision: Mapping[str, object], actions: Sequence[str] | None = None) -> bool:
    """Whether replaying a logged decision gives the action it logged."""
    return replay(decision, actions) == decision["action"]
