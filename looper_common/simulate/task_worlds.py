"""Scenarios of the non-binary example blueprints: a regression and a multiclass objective.

``WatchMinutes`` (regression): the minutes a user watches after a recommended row, so
the oracle is the expected minutes the label window catches. ``NotificationOutcome``
(multiclass): the one outcome a user takes after a notification (ignored, opened,
bought, unsubscribed), each worth the reward its label's ``classes`` declare, so the
oracle is the expected reward of the class that the label window sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from looper_common.contracts.tasks import reward_of_class
from looper_common.simulate.base import Features, Outcome, Scenario, Users
from looper_common.simulate.delays import LogNormalDelay

HOUR = 3600.0


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class WatchMinutes(Scenario):
    """Which row to recommend: the minutes watched depend on the row, device, age and habits.

    ``continue_watching`` pays off for users with an unfinished title and hardly for
    others, ``new_release`` for young mobile users, ``documentary`` for older users on
    TV, with long sessions; ``trending`` (the default) is middling for everyone. A
    session starts with a probability and lasts lognormal minutes; the player reports
    its minutes (``watch_minutes``) a delay after the recommendation.
    """

    name = "watch_minutes"
    actions = ("trending", "continue_watching", "new_release", "documentary")
    ages = ("18_24", "25_34", "35_54", "55_plus")
    devices = ("tv", "mobile", "web")
    feature_types = {"age_bucket": "category", "device": "category", "minutes_7d": "float",
                     "has_unfinished": "bool"}
    categories = {"age_bucket": ages, "device": devices}
    observations = ("watch_minutes",)
    delays = {"watch_minutes": LogNormalDelay(HOUR, 1.0)}
    objective_aggregations = ("sum",)
    sigma = 0.4  # of the session's log-minutes
    median_minutes = {"trending": 22.0, "continue_watching": 35.0, "new_release": 25.0, "documentary": 45.0}
    device_minutes = {"tv": 1.5, "mobile": 0.7, "web": 1.0}
    young = {"18_24": 1.0, "25_34": 0.5, "35_54": -0.4, "55_plus": -0.9}

    def make_users(self, n: int, rng: np.random.Generator) -> Users:
        return {
            "age_bucket": rng.choice(len(self.ages), n, p=[0.2, 0.3, 0.3, 0.2]),
            "device": rng.choice(len(self.devices), n, p=[0.35, 0.45, 0.2]),
            "habit": rng.lognormal(math.log(90.0), 0.9, n),  # minutes per week
            "finishes": rng.uniform(0.2, 0.9, n),  # P(no unfinished title) on a day
        }

    def daily_features(self, users: Users, rng: np.random.Generator) -> list[Features]:
        # capped, as a product's 7-day aggregate is (the first day's traffic reaches the cap,
        # so validation's learned range covers every later day)
        minutes = np.minimum(rng.gamma(4.0, users["habit"] / 4.0), 1200.0).round(1) + 0.1
        unfinished = rng.random(len(minutes)) > users["finishes"]
        return [
            {"age_bucket": self.ages[a], "device": self.devices[d], "minutes_7d": m, "has_unfinished": u}
            for a, d, m, u in zip(users["age_bucket"].tolist(), users["device"].tolist(), minutes.tolist(),
                                  unfinished.tolist(), strict=True)
        ]

    def start_probability(self, features: Mapping[str, object], action: str) -> float:
        logit = -2.6 + 1.1 * math.log1p(float(features["minutes_7d"]) / 60.0)
        age, device = str(features["age_bucket"]), str(features["device"])
        if action == "continue_watching":
            logit += 1.6 if features["has_unfinished"] else -2.0
        elif action == "new_release":
            logit += 0.9 * self.young[age] + (0.4 if device == "mobile" else -0.3)
        elif action == "documentary":
            logit += -0.9 * self.young[age] + (0.5 if device == "tv" else -0.6)
        return _sigmoid(logit)

    def median(self, features: Mapping[str, object], action: str) -> float:
        """Median session minutes: the row's, scaled by the device and by the user's habit."""
        habit = math.sqrt(0.5 + float(features["minutes_7d"]) / 120.0)
        return self.median_minutes[action] * self.device_minutes[str(features["device"])] * habit

    def mean_minutes(self, features: Mapping[str, object], action: str) -> float:
        return self.median(features, action) * math.exp(self.sigma**2 / 2.0)

    def event_probabilities(self, features: Mapping[str, object], action: str) -> dict[str, float]:
        return {"watch_minutes": self.start_probability(features, action)}

    def sample_outcomes(self, features: Mapping[str, object], action: str, u: Sequence[float],
                        z: Sequence[Sequence[float]]) -> list[Outcome]:
        if u[0] >= self.start_probability(features, action):
            return []
        minutes = round(self.median(features, action) * math.exp(self.sigma * z[0][1]), 2)
        return [("watch_minutes", minutes, self.delays["watch_minutes"].seconds(z[0][0]))]

    def expected_reward(self, features: Mapping[str, object], action: str) -> float:
        """E[minutes within the window] = P(session) * E[minutes] * P(reported within the window)."""
        return self.start_probability(features, action) * self.mean_minutes(features, action) * self._caught


class NotificationOutcome(Scenario):
    """Push, email or nothing: the outcome a user takes depends on channel, lapse and opt-in.

    Classes: 0 ignored (nothing is observed), 1 opened, 2 bought, 3 unsubscribed. A push
    opens lapsed app users but annoys frequent ones into unsubscribing; an email reaches
    only opted-in users and makes recent buyers buy again; ``skip`` leaves the organic
    purchases. One ``notification_outcome`` observation carries the class code.
    """

    name = "notification_outcome"
    actions = ("push", "email", "skip")
    platforms = ("ios", "android", "web")
    feature_types = {"days_since_last_visit": "float", "purchases_30d": "int", "email_opt_in": "bool",
                     "platform": "category"}
    categories = {"platform": platforms}
    observations = ("notification_outcome",)
    delays = {"notification_outcome": LogNormalDelay(2 * HOUR, 1.2)}
    classes = (0, 1, 2, 3)

    def make_users(self, n: int, rng: np.random.Generator) -> Users:
        return {
            "platform": rng.choice(len(self.platforms), n, p=[0.45, 0.4, 0.15]),
            "email_opt_in": rng.random(n) < 0.5,
            "visit_rate": rng.lognormal(math.log(0.5), 1.0, n),
            "buy_rate": rng.lognormal(math.log(1.0), 0.8, n),  # purchases per 30 days
        }

    def daily_features(self, users: Users, rng: np.random.Generator) -> list[Features]:
        since = np.clip(rng.exponential(1.0 / users["visit_rate"]), 0.01, 30.0).round(2)  # capped like minutes_7d
        bought = rng.poisson(users["buy_rate"])
        return [
            {"days_since_last_visit": d, "purchases_30d": b, "email_opt_in": o, "platform": self.platforms[p]}
            for d, b, o, p in zip(since.tolist(), bought.tolist(), users["email_opt_in"].tolist(),
                                  users["platform"].tolist(), strict=True)
        ]

    def class_probabilities(self, features: Mapping[str, object], action: str) -> list[float]:
        """P(ignored), P(opened), P(bought), P(unsubscribed): a softmax over the class logits."""
        since = max(float(features["days_since_last_visit"]), 0.01)
        bought = min(int(features["purchases_30d"]), 10)
        lapse = math.log(since / 5.0)
        opened, buy, unsub = -6.0, -3.4 + 0.2 * bought, -7.0
        if action == "push":
            opened = -0.8 - 0.5 * lapse**2 - (1.5 if features["platform"] == "web" else 0.0)
            buy += 0.5 - 0.4 * lapse**2
            unsub = -3.5 + (2.0 if since < 0.5 else 0.0)
        elif action == "email":
            reach = bool(features["email_opt_in"])
            opened = -1.5 if reach else -5.0
            buy += (0.25 * bought - 0.2) if reach else -0.5
            unsub = -4.0 if reach else -2.6
        logits = [0.0, opened, buy, unsub]
        top = max(logits)
        weights = [math.exp(v - top) for v in logits]
        total = sum(weights)
        return [w / total for w in weights]

    def event_probabilities(self, features: Mapping[str, object], action: str) -> dict[str, float]:
        return {"notification_outcome": 1.0 - self.class_probabilities(features, action)[0]}

    def sample_outcomes(self, features: Mapping[str, object], action: str, u: Sequence[float],
                        z: Sequence[Sequence[float]]) -> list[Outcome]:
        cumulative = 0.0
        for code, p in zip(self.classes, self.class_probabilities(features, action), strict=True):
            cumulative += p
            if u[0] < cumulative:
                if code == 0:
                    return []
                return [("notification_outcome", float(code),
                         self.delays["notification_outcome"].seconds(z[0][0]))]
        return []

    def expected_reward(self, features: Mapping[str, object], action: str) -> float:
        """sum_c P(c) * reward(c), an outcome the window misses counting as the label's default class."""
        missed = reward_of_class(self.objective, self.objective.default)
        return sum(
            p * (reward_of_class(self.objective, code) * self._caught + missed * (1.0 - self._caught))
            if code else p * missed
            for code, p in zip(self.classes, self.class_probabilities(features, action), strict=True)
        )
