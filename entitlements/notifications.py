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
from .rules import access_in_force


class AccessChange:
    SET = "access_set"
    TIER_APPLIED = "tier_applied"
    TIER_REMOVED = "tier_removed"
    WINDOW_STARTED = "window_started"
    WINDOW_ENDED = "window_ended"


def access_state(access: FeatureAccess, *, at: datetime) -> dict[str, Any]:
    """The access as the product sees it (camelCase, like a check's fields)."""
    return {
        "isEnabled": access.is_enabled,
        "quantityLimit": access.quantity_limit,
        "includedQuantity": access.included_quantity,
        "config": access.config,
        "source": access.source,
        "validFrom": iso_utc(access.valid_from),
        "validUntil": iso_utc(access.valid_until),
        "inForce": access_in_force(
            is_enabled=access.is_enabled, valid_from=access.valid_from, valid_until=access.valid_until, at=at
        ),
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

