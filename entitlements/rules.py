"""The one home of "is this access in force" (issue 9, item 1).

An access row is in force at a moment when it is enabled and the moment lies
inside its validity window [valid_from, valid_until) — an open end is
unbounded. Every caller uses these: the model (`FeatureAccess.in_force_at`),
the check (`entitlements.selectors.feature_check_build`), tier apply, the
usage writes (`metering.rules.AccessTerms`), billing's feature count and the
admin. `access_in_force_q` is the same rule as a database filter; a test runs
both over every case of the window and checks they agree."""

from __future__ import annotations

from dataclasses import dataclass
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


# --- Access layers (SPEC §4, issue 14) ---------------------------------------------
#
# One FeatureAccess row holds both layers of a company × feature: the tier
# layer (`tier_granted`, `is_enabled`, `quantity_limit`, `included_quantity`,
# `config`, `tier`) and at most one override (`source` other than
# `subscription`, the fields it sets in `overrides`, its window
# [valid_from, valid_until), `set_by`, `set_at`, `reason`). `access_resolve`
# is the one place that says which values are in force.

LAYER_FIELDS = ("is_enabled", "quantity_limit", "included_quantity", "config")
SUBSCRIPTION = "subscription"


@dataclass(frozen=True)
class EffectiveAccess:
    """What is in force for one company × feature at one moment."""

    granted: bool  # some layer is in force
    is_enabled: bool
    quantity_limit: int | None
    included_quantity: int
    config: dict
    source: str | None  # the layer in force: "subscription" or the override's source
    valid_until: datetime | None  # the override's end, when the override is in force
    override_in_force: bool
    # Why the override is not in force (None: in force or there is none).
    override_refusal: str | None = None


NOT_GRANTED = EffectiveAccess(False, False, None, 0, {}, None, None, False)


def override_window_refusal(*, valid_from: datetime | None, valid_until: datetime | None, at: datetime) -> str | None:
    """`not_yet_valid`, `expired` or None (the override's window holds `at`)."""
    if valid_from is not None and at < valid_from:
        return "not_yet_valid"
    if valid_until is not None and at >= valid_until:
        return "expired"
    return None


def access_resolve(access: dict | None, *, at: datetime) -> EffectiveAccess:
    """The values in force of an access row (a dict of its columns, as the
    check cache keeps it): the override's fields while its window holds `at`,
    the tier layer's for the rest. An override outside its window is not in
    force, so an expired trial falls back to the tier — it never switches the
    feature off."""
    if not access:
        return NOT_GRANTED
    overrides = access.get("overrides") or {}
    has_override = access.get("source", SUBSCRIPTION) != SUBSCRIPTION
    refusal = (
        override_window_refusal(valid_from=access.get("valid_from"), valid_until=access.get("valid_until"), at=at)
        if has_override
        else None
    )
    override_in_force = has_override and refusal is None
    tier_granted = bool(access.get("tier_granted", True))
    if not override_in_force and not tier_granted:
        return EffectiveAccess(False, False, None, 0, {}, None, None, False, refusal)
    values = {
        "is_enabled": bool(access["is_enabled"]) if tier_granted else False,
        "quantity_limit": access["quantity_limit"] if tier_granted else None,
        "included_quantity": access["included_quantity"] if tier_granted else 0,
        "config": dict(access["config"] or {}) if tier_granted else {},
    }
    if override_in_force:
        for key in LAYER_FIELDS:
            if key in overrides:
                if key == "config":
                    values["config"].update(overrides["config"] or {})
                else:
                    values[key] = overrides[key]
    return EffectiveAccess(
        granted=True,
        is_enabled=bool(values["is_enabled"]),
        quantity_limit=values["quantity_limit"],
        included_quantity=values["included_quantity"],
        config=values["config"],
        source=access["source"] if override_in_force else SUBSCRIPTION,
        valid_until=access.get("valid_until") if override_in_force else None,
        override_in_force=override_in_force,
        override_refusal=refusal,
    )


def access_refusal(access: dict | None, *, at: datetime) -> str | None:
    """Why a usage write is refused by access (None = allowed): `no_access`
    (no row), `expired`/`not_yet_valid` (only an override outside its window,
    no tier layer), `disabled`."""
    if not access:
        return "no_access"
    effective = access_resolve(access, at=at)
    if not effective.granted:
        return effective.override_refusal or "no_access"
    return None if effective.is_enabled else "disabled"


def access_in_force_layers_q(at: datetime) -> Q:
    """Rows whose effective access is enabled at `at` (`access_resolve` as a
    filter): an override in force that enables (by its own `is_enabled` or
    the tier's), or no override in force and an enabled tier layer."""
    window = (Q(valid_from__isnull=True) | Q(valid_from__lte=at)) & (Q(valid_until__isnull=True) | Q(valid_until__gt=at))
    override_in_force = ~Q(source=SUBSCRIPTION) & window
    tier_enabled = Q(tier_granted=True, is_enabled=True)
    override_enables = Q(overrides__is_enabled=True) | (~Q(overrides__has_key="is_enabled") & tier_enabled)
    return (override_in_force & override_enables) | (~override_in_force & tier_enabled)
