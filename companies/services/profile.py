"""Profile and billing fields of companies and accounts (SPEC §3): cleaning
with the rules of companies.profile, and the derived account fields that
billing and metering keep current."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db.models import Q

from config.errors import BadRequest

from .. import profile
from ..models import Account

# Model attribute → API field name.
COMPANY_PROFILE_FIELDS = {
    "country": "country",
    "industry": "industry",
    "size": "size",
    "timezone": "timezone",
    "locale": "locale",
}
ACCOUNT_BILLING_FIELDS = {
    "billing_email": "billingEmail",
    "billing_address": "billingAddress",
    "tax_id": "taxId",
    "currency": "currency",
}
PROFILE_FIELDS = {**COMPANY_PROFILE_FIELDS, **ACCOUNT_BILLING_FIELDS}

_CODE_CHECKS = {
    "country": profile.country_error,
    "size": profile.size_error,
    "timezone": profile.timezone_error,
    "locale": profile.locale_error,
    "currency": profile.currency_error,
}
_TEXT_LIMITS = {"industry": profile.MAX_INDUSTRY, "tax_id": profile.MAX_TAX_ID, "billing_email": 254}


def _clean_one(attribute: str, value: Any) -> tuple[Any, list[str] | dict | None]:
    if attribute == "billing_address":
        if value is None:
            return {}, None
        errors = profile.billing_address_errors(value)
        return (None, errors) if errors else (profile.billing_address_clean(value), None)
    if value is None:
        if attribute == "currency":
            return None, ["This field may not be null."]
        return "", None
    if not isinstance(value, str):
        return None, ["Not a valid string."]
    value = value.strip()
    if attribute == "billing_email":
        value = value.lower()
        if value:
            try:
                validate_email(value)
            except DjangoValidationError:
                return None, ["Enter a valid email address."]
    limit = _TEXT_LIMITS.get(attribute)
    if limit and len(value) > limit:
        return None, [f"Ensure this field has no more than {limit} characters."]
    check = _CODE_CHECKS.get(attribute)
    if check and (value or attribute == "currency"):
        message = check(value)
        if message:
            return None, [message]
    return value, None


def profile_clean(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form of profile/billing changes keyed by model attribute
    (None or "" clears a field; `currency` cannot be cleared), or one 400
    naming every bad field by its API name."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    for attribute, value in changes.items():
        if attribute not in PROFILE_FIELDS:
            raise TypeError(f"not a profile field: {attribute}")
        stored, problem = _clean_one(attribute, value)
        if isinstance(problem, dict):  # per part, named like the API's nested errors
            errors.update({f"{PROFILE_FIELDS[attribute]}.{part}": messages for part, messages in problem.items()})
        elif problem:
            errors[PROFILE_FIELDS[attribute]] = problem
        else:
            cleaned[attribute] = stored
    if errors:
        name, messages = next(iter(errors.items()))
        raise BadRequest(f"{name}: {messages[0]}", details={"fields": errors})
    return cleaned


def profile_split(changes: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(company changes, account changes) of cleaned profile changes."""
    company = {key: value for key, value in changes.items() if key in COMPANY_PROFILE_FIELDS}
    account = {key: value for key, value in changes.items() if key in ACCOUNT_BILLING_FIELDS}
    return company, account


# --- Derived fields -------------------------------------------------------------------


def account_purchases_set(
    *, company_id: UUID, product_id: UUID, lifetime_value: int, first_purchase_at: datetime | None
) -> int:
    """Billing's hook (SPEC §3 derived fields): the account's sum of paid
    invoices and the time of its first paid one, computed by billing from its
    invoice mirror and written here whole — so a replayed webhook or a
    backfill (sync_invoices) can call it again without counting twice.
    Returns the number of accounts changed (0 or 1)."""
    if lifetime_value < 0:
        raise ValueError("lifetime_value must be zero or more")
    return (
        Account.objects.filter(company_id=company_id, product_id=product_id)
        .exclude(lifetime_value=lifetime_value, first_purchase_at=first_purchase_at)
        .update(lifetime_value=lifetime_value, first_purchase_at=first_purchase_at)
    )


def accounts_health_set(health: dict[UUID, tuple[int, str]]) -> int:
    """Insights' hook (SPEC §3 derived fields `healthScore`, `riskLevel`): the accounts'
    current score and risk level, written whole in one statement (a rerun of the health
    job writes the same values). Returns the number of accounts given."""
    Account.objects.bulk_update(
        [Account(pk=pk, health_score=score, risk_level=risk) for pk, (score, risk) in health.items()],
        ["health_score", "risk_level"],
    )
    return len(health)


ACTIVITY_RESOLUTION_SECONDS = 60
_MAX_REMEMBERED = 50_000
_last_touched: dict[tuple, float] = {}


def account_activity_touch(*, company_id: UUID, product_id: UUID, at: datetime) -> bool:
    """Metering's hook after tracked usage: set the account's
    `last_activity_at`, at most once a minute per account and process (a
    dictionary lookup otherwise, so the track stays one statement), and never
    backwards (the UPDATE's condition). Returns whether it wrote."""
    key = (company_id, product_id)
    now = time.monotonic()
    seen = _last_touched.get(key)
    if seen is not None and now - seen < ACTIVITY_RESOLUTION_SECONDS:
        return False
    if len(_last_touched) >= _MAX_REMEMBERED:
        _last_touched.clear()
    _last_touched[key] = now
    return bool(
        Account.objects.filter(company_id=company_id, product_id=product_id)
        .filter(Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=at))
        .update(last_activity_at=at)
    )


def account_activity_forget() -> None:
    """Tests: forget what was touched, so the next touch writes."""
    _last_touched.clear()
