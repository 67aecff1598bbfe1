"""One traffic scenario per example blueprint, registered by blueprint name.

Each has a hidden response model whose effects differ across users in ways the
declared features reveal, so a learned policy can beat the default action by
personalizing, and no single action comes close to the oracle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from looper_common.contracts.blueprint import Blueprint
from looper_common.simulate.base import (
    Features,
    Outcome,
    Scenario,
    ScenarioError,
    Users,
    check_blueprint,
)
from looper_common.simulate.delays import LogNormalDelay
from looper_common.simulate.task_worlds import NotificationOutcome, WatchMinutes

__all__ = [
    "SCENARIOS", "FeedLayout", "NotificationOutcome", "NotificationSend", "PromoOffer", "Scenario", "ScenarioError",
    "WatchMinutes",
    "check_blueprint", "get_scenario",
]

HOUR = 3600.0


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class NotificationSend(Scenario):
    """Re-engagement push: sending pays off for opted-in users who lapsed a few days ago.

    ``skip`` has a small organic click rate that grows with activity. ``send`` adds a
    lift that peaks at ~4 days since the last visit for push-opted-in users (scaled by
    country and platform) and is slightly negative far from the peak, without opt-in
    and for frequent users, whose unsubscribe probability it also raises.
    """

    name = "notification_send"
    actions = ("send", "skip")
    countries = ("us", "gb", "de", "in", "br")
    platforms = ("ios", "android", "web")
    feature_types = {
        "days_since_last_visit": "float", "sessions_last_7d": "int", "push_opt_in": "bool",
        "country": "category", "platform": "category",
    }
    categories = {"country": countries, "platform": platforms}
    observations = ("click", "unsubscribe")
    # median 1h; ~5.6% of clicks come after 24h, so some land after the label window
    delays = {"click": LogNormalDelay(HOUR, 2.0), "unsubscribe": LogNormalDelay(6 * HOUR, 1.5)}
    country_lift = {"us": 1.0, "gb": 0.9, "de": 0.7, "in": 1.2, "br": 1.15}
    platform_lift = {"ios": 1.0, "android": 1.1, "web": 0.5}

    def make_users(self, n: int, rng: np.random.Generator) -> Users:
        return {
            "country": rng.choice(len(self.countries), n, p=[0.35, 0.15, 0.15, 0.2, 0.15]),
            "platform": rng.choice(len(self.platforms), n, p=[0.45, 0.4, 0.15]),
            "push_opt_in": rng.random(n) < 0.55,
            "visit_rate": rng.lognormal(math.log(0.5), 1.0, n),  # visits per day
        }

    def daily_features(self, users: Users, rng: np.random.Generator) -> list[Features]:
        rate = users["visit_rate"]
        since = np.clip(rng.exponential(1.0 / rate), 0.01, 90.0).round(2)
        # visits before the last one, within the rest of the 7-day window
        earlier = rng.poisson(rate * np.clip(7.0 - since, 0.0, None))
        sessions = np.where(since <= 7.0, 1 + earlier, 0)
        return [
            {
                "days_since_last_visit": d, "sessions_last_7d": s, "push_opt_in": o,
                "country": self.countries[c], "platform": self.platforms[p],
            }
            for d, s, o, c, p in zip(
                since.tolist(), sessions.tolist(), users["push_opt_in"].tolist(),
                users["country"].tolist(), users["platform"].tolist(), strict=True,
            )
        ]

    def event_probabilities(self, features: Mapping[str, object], action: str) -> dict[str, float]:
        sessions = int(features["sessions_last_7d"])
        organic = 0.01 + 0.006 * min(sessions, 14)
        if action == "skip":
            return {"click": organic, "unsubscribe": 0.001}
        lift = -0.01  # without push opt-in it lands in the inbox: mostly noise
        if features["push_opt_in"]:
            lapse = math.log(max(float(features["days_since_last_visit"]), 0.01) / 4.0)
            lift = 0.34 * math.exp(-(lapse**2) / (2 * 0.7**2)) * self.country_lift[
                str(features["country"])
            ] * self.platform_lift[str(features["platform"])] - 0.02
        if sessions >= 10:
            lift -= 0.03  # a push to someone who comes back anyway only annoys
        return {
            "click": min(max(organic + lift, 0.001), 0.95),
            "unsubscribe": 0.002 + 0.002 * min(sessions, 20),
        }


class FeedLayout(Scenario):
    """Feed layout: which layout engages depends on screen, age and activity.

    ``grid`` suits large screens and hurts on phones, ``carousel`` suits young mobile
    users and puts off older ones, ``compact`` suits heavy users and bores light ones,
    ``list`` (the default) is neutral. Engagement comes in minutes; the session's
    ``dwell_seconds`` is reported when it ends.
    """

    name = "feed_layout"
    actions = ("grid", "list", "carousel", "compact")
    ages = ("18_24", "25_34", "35_54", "55_plus")
    platforms = ("ios", "android", "web")
    feature_types = {
        "age_bucket": "category", "platform": "category", "screen_inches": "float",
        "items_viewed_7d": "int",
    }
    categories = {"age_bucket": ages, "platform": platforms}
    observations = ("engagement", "dwell_seconds")
    delays = {"engagement": LogNormalDelay(600.0, 1.8)}
    decisions_per_day = 1.0
    carousel_by_age = {"18_24": 0.9, "25_34": 0.45, "35_54": -0.3, "55_plus": -0.9}
    dwell_median_s = {"grid": 60.0, "list": 90.0, "carousel": 45.0, "compact": 120.0}

    def make_users(self, n: int, rng: np.random.Generator) -> Users:
        platform = rng.choice(len(self.platforms), n, p=[0.4, 0.4, 0.2])
        tablet = rng.random(n) < 0.15
        screen = np.where(
            platform == 2, rng.uniform(13.0, 27.0, n),
            np.where(tablet, rng.uniform(8.0, 13.0, n), rng.uniform(5.4, 6.9, n)),
        )
        return {
            "age_bucket": rng.choice(len(self.ages), n, p=[0.2, 0.3, 0.32, 0.18]),
            "platform": platform,
            "screen_inches": screen.round(1),
            "view_rate": rng.lognormal(math.log(25.0), 0.9, n),  # items per week
        }

    def daily_features(self, users: Users, rng: np.random.Generator) -> list[Features]:
        items = rng.poisson(users["view_rate"])
        return [
            {
                "age_bucket": self.ages[a], "platform": self.platforms[p],
                "screen_inches": s, "items_viewed_7d": i,
            }
            for a, p, s, i in zip(
                users["age_bucket"].tolist(), users["platform"].tolist(),
                users["screen_inches"].tolist(), items.tolist(), strict=True,
            )
        ]

    def event_probabilities(self, features: Mapping[str, object], action: str) -> dict[str, float]:
        items = int(features["items_viewed_7d"])
        screen = float(features["screen_inches"])
        logit = -1.4 + 0.45 * math.log1p(items / 10.0)
        if action == "grid":
            logit += math.tanh((screen - 8.0) / 2.5)
        elif action == "carousel":
            logit += self.carousel_by_age[str(features["age_bucket"])]
            logit += -0.5 if features["platform"] == "web" else 0.1
        elif action == "compact":
            logit += 0.9 * math.tanh((items - 40) / 20.0) + (0.2 if screen < 6.0 else 0.0)
        return {"engagement": _sigmoid(logit)}

    def sample_outcomes(
        self,
        features: Mapping[str, object],
        action: str,
        u: Sequence[float],
        z: Sequence[Sequence[float]],
    ) -> list[Outcome]:
        engaged = super().sample_outcomes(features, action, u, z)
        if not engaged:
            return []
        delay = engaged[0][2]
        dwell = round(self.dwell_median_s[action] * math.exp(0.8 * z[0][1]), 1)
        return [*engaged, ("dwell_seconds", dwell, delay + dwell)]


class PromoOffer(Scenario):
    """Promotional offer: it converts bargain hunters who have not bought for a few weeks.

    The effect differs in sign across users: bargain hunters and, less so, regular
    shoppers buy more when offered the promo if their last purchase was two to six
    weeks ago; premium shoppers react badly to discounts, and frequent visitors
    would buy anyway (the offer makes them wait for the next one), so for them the
    effect is negative. Purchases arrive within hours. The true individual effect is
    ``expected_reward(x, "treat") - expected_reward(x, "control")``.
    """

    name = "promo_offer"
    actions = ("treat", "control")
    segments = ("bargain", "regular", "premium")
    feature_types = {
        "days_since_purchase": "float", "visits_7d": "int", "loyalty_member": "bool",
        "segment": "category",
    }
    categories = {"segment": segments}
    observations = ("purchase",)
    delays = {"purchase": LogNormalDelay(2 * HOUR, 1.2)}
    segment_base = {"bargain": -0.3, "regular": 0.0, "premium": 0.4}
    segment_response = {"bargain": 0.25, "regular": 0.14, "premium": -0.05}

    def make_users(self, n: int, rng: np.random.Generator) -> Users:
        return {
            "segment": rng.choice(len(self.segments), n, p=[0.4, 0.4, 0.2]),
            "loyalty_member": rng.random(n) < 0.4,
            "purchase_rate": rng.lognormal(math.log(1 / 20), 0.9, n),  # purchases per day
            "visit_rate": rng.lognormal(math.log(0.4), 0.8, n),  # visits per day
        }

    def daily_features(self, users: Users, rng: np.random.Generator) -> list[Features]:
        since = np.clip(rng.exponential(1.0 / users["purchase_rate"]), 0.1, 180.0).round(1)
        visits = rng.poisson(7.0 * users["visit_rate"])
        return [
            {
                "days_since_purchase": d, "visits_7d": v, "loyalty_member": m,
                "segment": self.segments[s],
            }
            for d, v, m, s in zip(
                since.tolist(), visits.tolist(), users["loyalty_member"].tolist(),
                users["segment"].tolist(), strict=True,
            )
        ]

    def event_probabilities(self, features: Mapping[str, object], action: str) -> dict[str, float]:
        visits = int(features["visits_7d"])
        since = max(float(features["days_since_purchase"]), 0.1)
        segment = str(features["segment"])
        logit = (-2.8 + 0.35 * math.log1p(visits) - 0.3 * math.log(since / 20.0)
                 + 0.3 * bool(features["loyalty_member"]) + self.segment_base[segment])
        control = _sigmoid(logit)
        if action == "control":
            return {"purchase": control}
        lapse = math.log(since / 25.0)
        effect = self.segment_response[segment] * math.exp(-(lapse**2) / (2 * 0.6**2))
        if segment == "premium":
            effect = self.segment_response[segment]
        if visits >= 8:
            effect -= 0.06  # would have bought anyway, and now waits for the next offer
        return {"purchase": min(max(control + effect, 0.002), 0.95)}


SCENARIOS: dict[str, type[Scenario]] = {
    s.name: s for s in (NotificationSend, FeedLayout, PromoOffer, WatchMinutes, NotificationOutcome)
}


def get_scenario(blueprint: Blueprint) -> Scenario:
    """The scenario registered for ``blueprint``'s name, bound to and checked against it."""
    try:
        cls = SCENARIOS[blueprint.name]
    except KeyError:
        known = ", ".join(sorted(SCENARIOS))
        raise ScenarioError(
            f"no traffic scenario for blueprint {blueprint.name!r} (scenarios: {known})"
        ) from None
    return cls(blueprint)
