"""Building UsageEvent rows: one place decides what an event stores, so a
single track, a batch and a staff correction write the same shape."""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

from ..models import UsageEvent, UsageSource
from ..rules import AccessTerms, FeatureInfo, billable_delta, stripe_status_for


def usage_event_build(
    *,
    product_id: UUID,
    company_id: UUID,
    feature: FeatureInfo,
    terms: AccessTerms,
    meter_id: UUID,
    event_type: str,
    previous_value: int,
    new_value: int,
    event_time: datetime,
    now: datetime,
    idempotency_key: str | None = None,
    request_fingerprint: str = "",
    source: str = UsageSource.API,
    actor=None,
    performed_by: str = "",
    adjustment_reason: str = "",
    adjusts_event_id: UUID | None = None,
    metadata: dict | None = None,
) -> UsageEvent:
    """An unsaved event for a change of a meter from previous_value to new_value,
    with its billable delta and Stripe delivery status decided at write time."""
    event_id = uuid.uuid4()
    delta = billable_delta(previous_value, new_value, terms.included_quantity)
    return UsageEvent(
        id=event_id,
        product_id=product_id,
        company_id=company_id,
        feature_id=feature.id,
        meter_id=meter_id,
        event_type=event_type,
        quantity=new_value - previous_value,
        previous_value=previous_value,
        new_value=new_value,
        quantity_limit=terms.quantity_limit,
        included_quantity=terms.included_quantity,
        billable_delta=delta,
        idempotency_key=idempotency_key or None,
        request_fingerprint=request_fingerprint,
        event_time=event_time,
        created_at=now,
        source=source,
        performed_by=performed_by or "",
        actor_kind=getattr(actor, "kind", "") or "",
        actor_id=str(getattr(actor, "id", "") or "")[:64],
        actor_label=(getattr(actor, "label", "") or "")[:200],
        adjustment_reason=adjustment_reason or "",
        adjusts_event_id=adjusts_event_id,
        metadata=metadata or {},
        stripe_delivery_status=stripe_status_for(feature, delta),
        # Stable across retries: Stripe deduplicates meter events by identifier.
        stripe_event_identifier=str(event_id),
    )
