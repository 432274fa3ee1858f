"""The lifecycle rule (SPEC §3): which status an account should have, and
why. Pure: the facts are passed in (see `services.lifecycle`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from companies.models import CompanyStatus as S

REACTIVATED_FOR = timedelta(days=90)
# Statuses that mean the account once had a subscription granting a tier.
SUBSCRIBED_STATUSES = frozenset({S.ACTIVE, S.AT_RISK, S.REACTIVATED, S.CHURNED})


@dataclass(frozen=True)
class LifecycleFacts:
    status: str  # the current status
    granting: bool  # a subscription grants a tier now
    payment_failing: bool  # a granting subscription is past_due
    high_risk: bool  # health risk high or critical
    ever_subscribed: bool  # a subscription ever reached trialing/active (or any later status)
    reactivated_at: datetime | None  # the last change to `reactivated`


def lifecycle_status(facts: LifecycleFacts, *, now: datetime) -> tuple[str, str]:
    """(status, cause). `suspended` is kept until staff reactivate; the cause
    names the rule that decided."""
    current = facts.status
    if current == S.SUSPENDED:
        return current, "suspended_by_staff"
    if not facts.granting:
        if facts.ever_subscribed or current in SUBSCRIBED_STATUSES:
            return S.CHURNED, "no_granting_subscription"
        return S.PROSPECT, "never_subscribed"
    if current == S.CHURNED:
        return S.REACTIVATED, "subscription_granted_again"
    if facts.payment_failing:
        return S.AT_RISK, "payment_failing"
    if facts.high_risk:
        return S.AT_RISK, "health_risk"
    if facts.reactivated_at is not None and now - facts.reactivated_at < REACTIVATED_FOR:
        return S.REACTIVATED, "risk_cleared" if current == S.AT_RISK else "reactivated_recently"
    if current == S.AT_RISK:
        return S.ACTIVE, "risk_cleared"
    if current == S.REACTIVATED:
        return S.ACTIVE, "reactivated_90_days_ago"
    return S.ACTIVE, "subscription_granted"
