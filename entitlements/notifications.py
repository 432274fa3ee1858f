"""`feature_access.changed` (SPEC §4, §11): emitted through the outbox in the
transaction of every change of a company's access — a set (API PATCH, admin
override), a tier apply (each feature it grants, changes or removes), and
the start or end of an access window (the `expire_overrides` job)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from companies.selectors import external_org_id_for
from config.api.serializers import iso_utc
from notifications.models import EventType
from notifications.services import event_emit

from .models import FeatureAccess


class AccessChange:
    SET = "access_set"
    TIER_APPLIED = "tier_applied"
    TIER_REMOVED = "tier_removed"
    WINDOW_STARTED = "window_started"
    WINDOW_ENDED = "window_ended"
    OVERRIDE_REMOVED = "override_removed"


def access_state(access: FeatureAccess, *, at: datetime) -> dict[str, Any]:
    """The access in force as the product sees it (camelCase, like a check's
    fields): the layers resolved by `entitlements.rules.access_resolve`."""
    effective = access.effective_at(at)
    return {
        "isEnabled": effective.granted and effective.is_enabled,
        "quantityLimit": effective.quantity_limit,
        "includedQuantity": effective.included_quantity,
        "config": effective.config,
        "source": effective.source,
        "validFrom": iso_utc(access.valid_from) if access.has_override else None,
        "validUntil": iso_utc(access.valid_until) if access.has_override else None,
        "inForce": effective.granted and effective.is_enabled,
    }


def feature_access_changed_emit(
    *,
    access: FeatureAccess,
    product_id,
    feature_code: str,
    previous: dict[str, Any] | None,
    change: str,
    reason: str,
    at: datetime,
    tier_code: str | None = None,
    external_org_id: str | None | object = ...,
) -> None:
    """Write one `feature_access.changed` event in the caller's transaction.
    `previous` is `access_state` before the change (None for a new row)."""
    if external_org_id is ...:
        external_org_id = external_org_id_for(product_id=product_id, company_id=access.company_id)
    event_emit(
        product=product_id,
        type=EventType.FEATURE_ACCESS_CHANGED,
        data={
            "companyId": str(access.company_id),
            "externalOrgId": external_org_id,
            "featureCode": feature_code,
            "change": change,
            "reason": reason or None,
            "tierCode": tier_code,
            "access": access_state(access, at=at),
            "previous": previous,
        },
    )

