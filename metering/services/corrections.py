"""Staff corrections: set usage to an absolute value, or adjust it by a delta.

Corrections may pass the quantity limit (they fix the record, they are not
consumption) but never take usage below zero, always carry a reason, and are
new events — nothing already recorded is changed. The API and the admin's
*Adjust usage…* action both call these."""

from __future__ import annotations

from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.api.serializers import MAX_BIGINT
from config.errors import BadRequest, NotFound

from ..models import UsageEvent, UsageEventType, UsageMeter, UsageSnapshot, UsageSnapshotType, UsageSource
from ..periods import period_for
from ..rules import (
    UsageResult,
    billable,
    check_quantity,
    fingerprint,
    overflow,
    result_from_row,
    stored_result,
)
from ..selectors import usage_target_get
from .alerts import usage_alerts_emit
from .events import usage_event_row, usage_events_insert
from .meters import meters_get_or_create

MAX_REASON_LENGTH = 2000


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise BadRequest.for_field("reason", "A reason is required for corrections.")
    if len(reason) > MAX_REASON_LENGTH:
        raise BadRequest.for_field("reason", f"At most {MAX_REASON_LENGTH} characters.")
    return reason


def _performer(performed_by: str, actor) -> str:
    return (performed_by or "").strip()[:200] or (getattr(actor, "label", "") or "")[:200]


def usage_set(
    *,
    product_id: UUID,
    feature_code: str,
    absolute_value: int,
    reason: str,
    company_id: UUID | None = None,
    external_org_id: str | None = None,
    performed_by: str = "",
    actor=None,
    source: str = UsageSource.API,
    metadata: dict | None = None,
    idempotency_key: str | None = None,
) -> UsageResult:
    """Set the current period's usage to `absolute_value` (≥ 0; may exceed the
    limit). Writes a `set` event with the delta and a `set` snapshot."""
    reason = _check_reason(reason)
    check_quantity(absolute_value, field="absoluteValue", minimum=0, allow_zero=True)
    company_id, feature, terms = usage_target_get(
        product_id=product_id, feature_code=feature_code, company_id=company_id, external_org_id=external_org_id
    )
    request_fingerprint = fingerprint(
        "set", companyId=str(company_id), featureCode=feature.code, absoluteValue=absolute_value,
        reason=reason, performedBy=performed_by or "", metadata=metadata or {},
    )
    replay = stored_result(product_id=product_id, idempotency_key=idempotency_key, request_fingerprint=request_fingerprint)
    if replay is not None:
        return replay
    now = timezone.now()
    period = period_for(feature.reset_period, now, company_id=company_id)
    meter_id = meters_get_or_create(keys={(company_id, feature.id, period)}, now=now)[
        (company_id, feature.id, period.start)
    ]
    try:
        with transaction.atomic():
            # The row lock keeps previous_value true until the event commits.
            previous = UsageMeter.objects.select_for_update().values_list("value", flat=True).get(id=meter_id)
            UsageMeter.objects.filter(id=meter_id).update(value=absolute_value, updated_at=now)
            event = usage_event_row(
                product_id=product_id, company_id=company_id, feature=feature, terms=terms, meter_id=meter_id,
                event_type=UsageEventType.SET, previous_value=previous, new_value=absolute_value,
                event_time=now, now=now, idempotency_key=idempotency_key,
                request_fingerprint=request_fingerprint, source=source, actor=actor,
                performed_by=_performer(performed_by, actor), adjustment_reason=reason, metadata=metadata,
            )
            usage_events_insert([event])
            usage_alerts_emit(event=event, feature=feature, now=now)
            UsageSnapshot.objects.create(
                company_id=company_id,
                feature_id=feature.id,
                meter_id=meter_id,
                absolute_value=absolute_value,
                billable_value=billable(absolute_value, terms.included_quantity),
                snapshot_type=UsageSnapshotType.SET,
                reason=reason,
                created_by=event["performed_by"] or str(actor or ""),
                trigger_event_id=event["id"],
                metadata=metadata or {},
                created_at=now,
            )
    except IntegrityError:
        replay = stored_result(
            product_id=product_id, idempotency_key=idempotency_key, request_fingerprint=request_fingerprint
        )
        if replay is None:
            raise
        return replay
    return result_from_row(event, feature_code=feature.code)


def usage_adjust(
    *,
    product_id: UUID,
    feature_code: str,
    delta: int,
    reason: str,
    company_id: UUID | None = None,
    external_org_id: str | None = None,
    adjusts_event_id: UUID | None = None,
    performed_by: str = "",
    actor=None,
    source: str = UsageSource.API,
    metadata: dict | None = None,
    idempotency_key: str | None = None,
) -> UsageResult:
    """Add `delta` (≠ 0, may be negative; may exceed the limit) to usage. When
    it corrects an earlier event (`adjusts_event_id`), it applies to that
    event's period; otherwise to the current one. 400 if usage would go below 0."""
    reason = _check_reason(reason)
    check_quantity(delta, field="delta", minimum=None)
    company_id, feature, terms = usage_target_get(
        product_id=product_id, feature_code=feature_code, company_id=company_id, external_org_id=external_org_id
    )
    request_fingerprint = fingerprint(
        "adjust", companyId=str(company_id), featureCode=feature.code, delta=delta, reason=reason,
        adjustsEventId=str(adjusts_event_id) if adjusts_event_id else None,
        performedBy=performed_by or "", metadata=metadata or {},
    )
    replay = stored_result(product_id=product_id, idempotency_key=idempotency_key, request_fingerprint=request_fingerprint)
    if replay is not None:
        return replay
    now = timezone.now()
    if adjusts_event_id is not None:
        meter_id = (
            UsageEvent.objects.filter(id=adjusts_event_id, company_id=company_id, feature_id=feature.id)
            .values_list("meter_id", flat=True)
            .first()
        )
        if meter_id is None:
            raise NotFound(
                "The adjusted event does not exist for this company and feature.",
                details={"fields": {"adjustsEventId": ["Unknown event."]}},
            )
    else:
        period = period_for(feature.reset_period, now, company_id=company_id)
        meter_id = meters_get_or_create(keys={(company_id, feature.id, period)}, now=now)[
            (company_id, feature.id, period.start)
        ]
    try:
        with transaction.atomic():
            previous = UsageMeter.objects.select_for_update().values_list("value", flat=True).get(id=meter_id)
            new_value = previous + delta
            if new_value < 0:
                raise BadRequest(
                    f"Usage cannot go below 0 (current usage {previous}, delta {delta}).",
                    details={"fields": {"delta": ["Usage cannot go below 0."]}, "currentUsage": previous},
                )
            if new_value > MAX_BIGINT:
                raise overflow(field="delta")
            UsageMeter.objects.filter(id=meter_id).update(value=new_value, updated_at=now)
            event = usage_event_row(
                product_id=product_id, company_id=company_id, feature=feature, terms=terms, meter_id=meter_id,
                event_type=UsageEventType.ADJUSTMENT, previous_value=previous, new_value=new_value,
                event_time=now, now=now, idempotency_key=idempotency_key,
                request_fingerprint=request_fingerprint, source=source, actor=actor,
                performed_by=_performer(performed_by, actor), adjustment_reason=reason,
                adjusts_event_id=adjusts_event_id, metadata=metadata,
            )
            usage_events_insert([event])
            usage_alerts_emit(event=event, feature=feature, now=now)
    except IntegrityError:
        replay = stored_result(
            product_id=product_id, idempotency_key=idempotency_key, request_fingerprint=request_fingerprint
        )
        if replay is None:
            raise
        return replay
    return result_from_row(event, feature_code=feature.code)
