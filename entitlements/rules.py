"""The one home of "is this access in force" (issue 9, item 1).

An access row is in force at a moment when it is enabled and the moment lies
inside its validity window [valid_from, valid_until) — an open end is
unbounded. Every caller uses these: the model (`FeatureAccess.in_force_at`),
the check (`entitlements.selectors.feature_check_build`), tier apply, the
usage writes (`metering.rules.AccessTerms`), billing's feature count and the
admin. `access_in_force_q` is the same rule as a database filter; a test runs
both over every case of the window and checks they agree."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q


def access_window_refusal(*, is_enabled: bool, valid_from: datetime | None, valid_until: datetime | None, at: datetime) -> str | None:
    """Why an access row is not in force at `at` (None = in force):
    `disabled`, `not_yet_valid` (before valid_from) or `expired` (at or after
    valid_until)."""
    if not is_enabled:
        return "disabled"
    if valid_from is not None and at < valid_from:
        return "not_yet_valid"
    if valid_until is not None and at >= valid_until:
        return "expired"
    return None


def access_in_force(*, is_enabled: bool, valid_from: datetime | None, valid_until: datetime | None, at: datetime) -> bool:
    """True when the access is enabled and `at` is inside [valid_from, valid_until)."""
    return access_window_refusal(is_enabled=is_enabled, valid_from=valid_from, valid_until=valid_until, at=at) is None


def access_in_force_for_good(*, is_enabled: bool, valid_from: datetime | None, valid_until: datetime | None, at: datetime) -> bool:
    """In force now and with no end: what a hand-set row must be to survive a
    tier change (a time-limited one, such as a trial, gives way to the tier)."""
    return valid_until is None and access_in_force(
        is_enabled=is_enabled, valid_from=valid_from, valid_until=valid_until, at=at
    )


def access_in_force_q(at: datetime, *, prefix: str = "") -> Q:
    """`access_in_force` as a filter on FeatureAccess rows (`prefix` for a
    related lookup, e.g. "feature_access__")."""
    return (
        Q(**{f"{prefix}is_enabled": True})
        & (Q(**{f"{prefix}valid_from__isnull": True}) | Q(**{f"{prefix}valid_from__lte": at}))
        & (Q(**{f"{prefix}valid_until__isnull": True}) | Q(**{f"{prefix}valid_until__gt": at}))
    )
