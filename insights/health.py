"""The health score rule (SPEC §8): named, weighted components, each a value
0–100 (higher is healthier) explained in one sentence, and the risk level of
the weighted score. Pure: the facts are passed in (`services.health` reads
them through the other apps' selectors); weights and thresholds come from
settings (`HEALTH_WEIGHTS`, `HEALTH_RISK_THRESHOLDS`).

| component | value |
|---|---|
| `usage_trend` | usage events in the last 30 days against the 30 before: 100 when flat or growing, minus the percentage of the fall (down 40% → 60); 100 for usage that just started; 0 without usage in either |
| `limit_pressure` | the most used limited feature's share of its limit this period: 100 up to 75%, then falling linearly to 0 at the limit (90% → 40) |
| `credit_runway` | days the available credits last at the last 30 days' average daily use: 100 at 60 days or more, linearly down to 0 (30 days → 50); 100 without credit use |
| `payment_health` | 0 with a subscription `unpaid` or `past_due`, 25 with an uncollectible invoice in the last 90 days, 60 with an open invoice still due, else 100 |
| `recency` | days since the last usage: 100 within a day, then linearly down to 0 at 30 days; 0 without any usage |

score = round(Σ weight × value ÷ Σ weight); risk: `low` at or above the
`low` threshold, else `medium` at or above `medium`, `high` at or above
`high`, else `critical`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

TREND_DAYS = 30
LIMIT_COMFORT_PERCENT = 75
RUNWAY_HEALTHY_DAYS = 60
BURN_DAYS = 30
RECENCY_ZERO_DAYS = 30
UNCOLLECTIBLE_LOOKBACK_DAYS = 90

COMPONENTS = ("usage_trend", "limit_pressure", "credit_runway", "payment_health", "recency")
DEFAULT_WEIGHTS = {"usage_trend": 30, "limit_pressure": 15, "credit_runway": 15, "payment_health": 25, "recency": 15}
# The lowest score of each level (below `high`: critical).
DEFAULT_THRESHOLDS = {"low": 75, "medium": 50, "high": 25}


@dataclass(frozen=True)
class LimitUse:
    feature_code: str
    used: int
    limit: int


@dataclass(frozen=True)
class HealthFacts:
    """What the score of one account depends on, read at `now`."""

    events_current: int = 0  # usage events in the last TREND_DAYS days
    events_previous: int = 0  # in the TREND_DAYS days before
    limits: list[LimitUse] = field(default_factory=list)  # enabled limited features, this period
    credits_available: int | None = None  # None: no wallet
    credits_used_recent: int = 0  # used in the last BURN_DAYS days (usage + fallback)
    failing_subscriptions: list[str] = field(default_factory=list)  # statuses past_due/unpaid
    uncollectible_invoices: int = 0  # in the last UNCOLLECTIBLE_LOOKBACK_DAYS days
    open_invoices_due: int = 0  # open with an amount due
    last_activity_at: datetime | None = None


@dataclass(frozen=True)
class Component:
    name: str
    value: int
    weight: int
    detail: str

    def as_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "weight": self.weight, "detail": self.detail}


@dataclass(frozen=True)
class HealthResult:
    score: int
    risk_level: str
    components: list[Component]


def _round(value) -> int:
    return int(Decimal(str(value)).to_integral_value(ROUND_HALF_UP))


def _clamp(value: float) -> int:
    return max(0, min(100, _round(value)))


def usage_trend(facts: HealthFacts) -> tuple[int, str]:
    current, previous = facts.events_current, facts.events_previous
    if not current and not previous:
        return 0, f"No usage in the last {TREND_DAYS} days nor the {TREND_DAYS} before."
    if not previous:
        return 100, f"{current} usage events in the last {TREND_DAYS} days, none in the {TREND_DAYS} before."
    change = Decimal(current - previous) * 100 / previous
    if change >= 0:
        return 100, f"{current} usage events in the last {TREND_DAYS} days, up {_round(change)}% from {previous}."
    return _clamp(100 + change), f"{current} usage events in the last {TREND_DAYS} days, down {_round(-change)}% from {previous}."


def limit_pressure(facts: HealthFacts) -> tuple[int, str]:
    limited = [use for use in facts.limits if use.limit > 0]
    if not limited:
        return 100, "No enabled feature has a usage limit."
    worst = max(limited, key=lambda use: Decimal(use.used) / use.limit)
    percent = Decimal(worst.used) * 100 / worst.limit
    value = 100 if percent <= LIMIT_COMFORT_PERCENT else _clamp((100 - percent) * 100 / (100 - LIMIT_COMFORT_PERCENT))
    return value, f"{worst.feature_code} is at {_round(percent)}% of its limit ({worst.used} of {worst.limit}) this period."


def credit_runway(facts: HealthFacts) -> tuple[int, str]:
    if facts.credits_available is None:
        return 100, "No credit wallet."
    if facts.credits_used_recent <= 0:
        return 100, f"No credits used in the last {BURN_DAYS} days ({max(facts.credits_available, 0)} available)."
    available = max(facts.credits_available, 0)
    days = Decimal(available) * BURN_DAYS / facts.credits_used_recent
    value = _clamp(days * 100 / RUNWAY_HEALTHY_DAYS)
    return value, (
        f"{available} credits last about {_round(days)} days at the last {BURN_DAYS} days' use "
        f"of {facts.credits_used_recent}."
    )


def payment_health(facts: HealthFacts) -> tuple[int, str]:
    if facts.failing_subscriptions:
        statuses = ", ".join(sorted(set(facts.failing_subscriptions)))
        return 0, f"A subscription is {statuses.replace('_', ' ')}: payments are failing."
    if facts.uncollectible_invoices:
        return 25, f"{facts.uncollectible_invoices} invoice(s) marked uncollectible in the last {UNCOLLECTIBLE_LOOKBACK_DAYS} days."
    if facts.open_invoices_due:
        return 60, f"{facts.open_invoices_due} open invoice(s) still due."
    return 100, "No failing subscription and no unpaid invoice."


def recency(facts: HealthFacts, *, now: datetime) -> tuple[int, str]:
    if facts.last_activity_at is None:
        return 0, "No usage ever recorded."
    days = max(0, (now - facts.last_activity_at).days)
    if days <= 1:
        return 100, "Used within the last day."
    value = _clamp(Decimal(RECENCY_ZERO_DAYS - days) * 100 / (RECENCY_ZERO_DAYS - 1))
    return value, f"Last used {days} days ago."


def risk_level(score: int, thresholds: dict) -> str:
    if score >= thresholds["low"]:
        return "low"
    if score >= thresholds["medium"]:
        return "medium"
    if score >= thresholds["high"]:
        return "high"
    return "critical"


def health_score(facts: HealthFacts, *, now: datetime, weights: dict | None = None, thresholds: dict | None = None) -> HealthResult:
    """The weighted score, its risk level and the explained components."""
    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    thresholds = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    rules = {
        "usage_trend": usage_trend(facts),
        "limit_pressure": limit_pressure(facts),
        "credit_runway": credit_runway(facts),
        "payment_health": payment_health(facts),
        "recency": recency(facts, now=now),
    }
    components = [Component(name, value, int(weights[name]), detail) for name, (value, detail) in rules.items()]
    total_weight = sum(c.weight for c in components)
    score = _clamp(Decimal(sum(c.weight * c.value for c in components)) / total_weight) if total_weight else 0
    return HealthResult(score=score, risk_level=risk_level(score, thresholds), components=components)
