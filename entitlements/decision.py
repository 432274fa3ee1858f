"""The one decision function of a feature check (SPEC §4, issue 14): the
check result, its one-sentence reason and the ordered rules that produced
it. The check (`metering.selectors.feature_check`), the explanation
(`…/explain`) and the admin all call `feature_decide`; nothing else decides
whether a feature can be used.

Entitlements does not know usage, periods or suspension: the caller passes
them (SPEC §1 (a)). Pure: no database access."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .rules import access_resolve

STATUSES = ("active", "limit_reached", "no_credits", "disabled", "not_granted", "suspended")

# Rule names, in the order they are applied.
RULE_ACCOUNT = "account_not_suspended"
RULE_GRANTED = "access_granted"
RULE_ENABLED = "enabled"
RULE_LIMIT = "within_limit"
RULE_CREDITS = "credits_for_one_unit"

_PERIOD_WORDS = {
    "daily": "today",
    "weekly": "this week",
    "monthly": "this month",
    "yearly": "this year",
    "billing_period": "this billing period",
    "never": "in total",
}


@dataclass(frozen=True)
class FeatureCheck:
    """The check result of SPEC §4 (the serializer renders it in camelCase)."""

    feature_code: str
    feature_name: str
    kind: str
    is_enabled: bool
    can_use: bool
    has_quantity: bool
    current_usage: int
    quantity_limit: int | None
    included_quantity: int
    remaining: int | None
    config_values: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    valid_until: datetime | None = None
    tier_code: str | None = None
    status: str = "active"
    credit_cost: int | None = None
    credits_available: int | None = None
    usage_percent: int | None = None
    reset_period: str | None = None
    period_start: datetime | None = None
    reset_at: datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class Rule:
    rule: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Decision:
    check: FeatureCheck
    rules: list[Rule]


def _day(moment: datetime | None) -> str:
    return f"{moment.day} {moment:%b}" if moment is not None else ""


def _usage_phrase(feature: dict, usage: int, limit: int | None, reset_period: str | None, reset_at) -> str:
    noun = feature["name"]
    when = _PERIOD_WORDS.get(reset_period or "never", "in total")
    counted = f"Usage {usage} of {limit} {noun}" if limit is not None else f"Usage {usage} {noun} (no limit)"
    resets = f"; resets on {_day(reset_at)}" if reset_at is not None else ""
    return f"{counted} {when}{resets}."


def feature_decide(
    *,
    feature: dict[str, Any],
    access: dict[str, Any] | None,
    usage: int,
    tier_code: str | None,
    at: datetime,
    credits_available: int | None = None,
    suspended: bool = False,
    period_start: datetime | None = None,
    reset_at: datetime | None = None,
) -> Decision:
    """Decide one company × feature at `at`. Rules, in order: the account is
    not suspended; a layer grants access (an override in its window, else the
    tier layer); the access in force is enabled; usage is under the limit
    (metered); the wallet holds the credits for one more unit (credit-priced,
    beyond the included quantity). `status` is the first rule that fails."""
    has_quantity = feature["kind"] == "metered"
    credit_cost = feature.get("credit_cost")
    effective = access_resolve(access, at=at)
    limit = effective.quantity_limit if effective.granted else None
    included = effective.included_quantity if effective.granted else 0
    reset_period = (feature.get("reset_period") or None) if has_quantity else None
    available = (credits_available or 0) if credit_cost is not None else None
    name = feature["name"]

    rules = [
        Rule(RULE_ACCOUNT, not suspended, "The account is suspended." if suspended else "The account is not suspended."),
    ]
    if effective.override_in_force:
        granted_detail = f"Override ({effective.source}) in force" + (
            f" until {effective.valid_until:%Y-%m-%d %H:%M} UTC." if effective.valid_until else "."
        )
    elif effective.granted:
        granted_detail = f"Granted by the tier layer ({tier_code or 'no tier'})" + (
            f"; the {access['source']} override is {effective.override_refusal.replace('_', ' ')}."
            if effective.override_refusal
            else "."
        )
    elif access:
        granted_detail = (
            f"The {access['source']} override is {effective.override_refusal.replace('_', ' ')} and the tier does not grant it."
            if effective.override_refusal
            else "The tier does not grant it and there is no override."
        )
    else:
        granted_detail = "No tier or override grants it."
    rules.append(Rule(RULE_GRANTED, effective.granted, granted_detail))
    enabled = effective.granted and effective.is_enabled
    rules.append(Rule(RULE_ENABLED, enabled, "Enabled." if enabled else "Switched off."))
    under_limit = not has_quantity or limit is None or usage < limit
    if not has_quantity:
        limit_detail = "Not metered."
    elif limit is None:
        limit_detail = f"Usage {usage}, no limit."
    else:
        limit_detail = f"Usage {usage} of {limit}."
    rules.append(Rule(RULE_LIMIT, under_limit, limit_detail))
    has_credits = True
    if credit_cost is None:
        credit_detail = "Not paid with credits."
    elif usage + 1 <= included:
        credit_detail = f"Within the included quantity ({included}): free."
    else:
        has_credits = (available or 0) >= credit_cost
        credit_detail = f"One unit costs {credit_cost} credits; {available} available."
    rules.append(Rule(RULE_CREDITS, has_credits, credit_detail))

    if suspended:
        status, reason = "suspended", "The account is suspended; every feature is blocked until it is reactivated."
    elif not effective.granted:
        status = "not_granted"
        if effective.override_refusal == "expired":
            reason = f"{name} is not included in the current plan; the {access['source']} override ended."
        elif effective.override_refusal == "not_yet_valid":
            reason = f"{name} is not included in the current plan; the {access['source']} override starts on {_day(access['valid_from'])}."
        else:
            reason = f"{name} is not included in the current plan."
    elif not enabled:
        status, reason = "disabled", f"{name} is switched off for this company."
    elif not under_limit:
        status, reason = "limit_reached", _usage_phrase(feature, usage, limit, reset_period, reset_at)
    elif not has_credits:
        status = "no_credits"
        reason = f"Not enough credits: one unit of {name} costs {credit_cost} credits, {available} available."
    else:
        status = "active"
        if has_quantity:
            reason = _usage_phrase(feature, usage, limit, reset_period, reset_at)
        else:
            reason = f"{name} is available" + (
                f" until {_day(effective.valid_until)} ({effective.source})." if effective.valid_until else "."
            )

    if has_quantity:
        remaining = 0 if not enabled else (None if limit is None else max(0, limit - usage))
        usage_percent = None if limit is None else (100 if limit == 0 else usage * 100 // limit)
    else:
        remaining, usage_percent = None, None
    config_values = dict(feature.get("default_config") or {})
    config_values.update(effective.config if effective.granted else {})
    check = FeatureCheck(
        feature_code=feature["code"],
        feature_name=name,
        kind=feature["kind"],
        is_enabled=enabled,
        can_use=status == "active",
        has_quantity=has_quantity,
        current_usage=usage if has_quantity else 0,
        quantity_limit=limit,
        included_quantity=included,
        remaining=remaining,
        config_values=config_values,
        source=effective.source,
        valid_until=effective.valid_until,
        tier_code=tier_code if effective.granted else None,
        status=status,
        credit_cost=credit_cost,
        credits_available=available,
        usage_percent=usage_percent,
        reset_period=reset_period,
        period_start=period_start if has_quantity else None,
        reset_at=reset_at if has_quantity else None,
        reason=reason,
    )
    return Decision(check=check, rules=rules)
