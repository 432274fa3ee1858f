"""camelCase request and response shapes of the usage API (SPEC §5)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from config.api.pagination import PageQuerySerializer
from config.api.schema import ErrorBodySerializer
from config.api.serializers import (
    JSONObjectField,
    NonZeroIntegerField,
    PlainInputFastPathMixin,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    StrictUUIDField,
    UTCDateTimeField,
    iso_utc,
)

from ..models import StripeDeliveryStatus, UsageEventType, UsageSnapshotType, UsageSource
from ..services import MAX_BATCH_SIZE


class _CompanyRefSerializer(StrictSerializer):
    """`companyId` or `externalOrgId`, exactly one."""

    exactly_one_of = ("companyId", "externalOrgId")

    companyId = StrictUUIDField(source="company_id", required=False)
    externalOrgId = StrictCharField(source="external_org_id", required=False, max_length=200)



class UsageTrackSerializer(PlainInputFastPathMixin, _CompanyRefSerializer):
    """The one validated input of a track: `POST /usage/track` and every item
    of `POST /usage/track-batch` (which validates item by item, so that one bad
    event is an `error` result of its own)."""

    featureCode = StrictCharField(source="feature_code", max_length=64)
    quantity = StrictIntegerField(min_value=1, default=1)
    idempotencyKey = StrictCharField(source="idempotency_key", required=False, max_length=255)
    timestamp = UTCDateTimeField(
        required=False,
        help_text="When it happened: at most 35 days ago and 5 minutes ahead (SPEC §5).",
        example=lambda: timezone.now() - timedelta(minutes=1),
    )
    metadata = JSONObjectField(required=False)


@extend_schema_field(UsageTrackSerializer)
@extend_schema_field(OpenApiTypes.ANY)
class _BatchItemField(serializers.Field):
    """One item of a batch, as parsed from the request's JSON: passed on as it
    is, to be validated by UsageTrackSerializer item by item. (DRF's JSONField
    would re-encode every item only to check it is JSON, which it is.)"""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


class UsageTrackBatchSerializer(StrictSerializer):
    # Items are validated one by one in the view, so that one bad event is an
    # `error` result of its own instead of failing the other 999.
    events = serializers.ListField(
        child=_BatchItemField(allow_null=True),
        allow_empty=False,
        min_length=1,
        max_length=MAX_BATCH_SIZE,
        help_text="Each item is a track body (UsageTrackRequest); an item that is not valid is an `error` result of its "
        "own, not a 400 of the batch.",
    )


class UsageSetSerializer(_CompanyRefSerializer):
    featureCode = StrictCharField(source="feature_code", max_length=64)
    absoluteValue = StrictIntegerField(source="absolute_value", min_value=0)
    reason = StrictCharField(max_length=2000)
    performedBy = StrictCharField(source="performed_by", required=False, allow_blank=True, max_length=200)
    idempotencyKey = StrictCharField(source="idempotency_key", required=False, max_length=255)
    metadata = JSONObjectField(required=False)


class UsageAdjustSerializer(_CompanyRefSerializer):
    # `delta ≠ 0` is checked once, by the service (metering.rules.check_quantity);
    # NonZeroIntegerField only says so in the schema.
    featureCode = StrictCharField(source="feature_code", max_length=64)
    delta = NonZeroIntegerField(help_text="≠ 0; may be negative.")
    reason = StrictCharField(max_length=2000)
    adjustsEventId = StrictUUIDField(source="adjusts_event_id", required=False, allow_null=True)
    performedBy = StrictCharField(source="performed_by", required=False, allow_blank=True, max_length=200)
    idempotencyKey = StrictCharField(source="idempotency_key", required=False, max_length=255)
    metadata = JSONObjectField(required=False)


class _CompanyQuerySerializer(PageQuerySerializer):
    companyId = StrictUUIDField(source="company_id")
    featureCode = StrictCharField(source="feature_code", required=False, max_length=64)


class UsageHistoryQuerySerializer(_CompanyQuerySerializer):
    eventType = serializers.ChoiceField(source="event_type", choices=UsageEventType.values, required=False)
    includeDelivered = serializers.BooleanField(source="include_delivered", default=True)


class UsageSnapshotQuerySerializer(_CompanyQuerySerializer):
    pass


# --- Responses --------------------------------------------------------------------


class UsageResultSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    featureCode = serializers.CharField(source="feature_code")
    previousUsage = serializers.IntegerField(source="previous_usage")
    currentUsage = serializers.IntegerField(source="current_usage")
    delta = serializers.IntegerField()
    quantityLimit = serializers.IntegerField(source="quantity_limit", allow_null=True)
    remaining = serializers.IntegerField(allow_null=True)
    isAtLimit = serializers.BooleanField(source="is_at_limit")
    includedQuantity = serializers.IntegerField(source="included_quantity")
    billableQuantity = serializers.IntegerField(source="billable_quantity")
    meterId = serializers.UUIDField(source="meter_id")
    eventId = serializers.UUIDField(source="event_id", allow_null=True)


def usage_result_data(result) -> dict:
    """UsageResult → its JSON object (the hot path of /usage/track, so written
    out rather than through a serializer; UsageResultSerializer documents it)."""
    return {
        "success": result.success,
        "featureCode": result.feature_code,
        "previousUsage": result.previous_usage,
        "currentUsage": result.current_usage,
        "delta": result.delta,
        "quantityLimit": result.quantity_limit,
        "remaining": result.remaining,
        "isAtLimit": result.is_at_limit,
        "includedQuantity": result.included_quantity,
        "billableQuantity": result.billable_quantity,
        "meterId": str(result.meter_id),
        "eventId": str(result.event_id) if result.event_id else None,
    }


class BatchItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["ok", "duplicate", "error"])
    result = UsageResultSerializer(required=False)
    error = ErrorBodySerializer(required=False)


class UsageTrackBatchResponseSerializer(serializers.Serializer):
    results = BatchItemResultSerializer(many=True)


class ActorSerializer(serializers.Serializer):
    """Who made a usage event (the OpenAPI shape of `actor`)."""

    kind = serializers.CharField()
    id = serializers.CharField()
    label = serializers.CharField()


class UsageEventSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    companyId = serializers.UUIDField(source="company_id")
    featureCode = serializers.CharField(source="feature.code")
    meterId = serializers.UUIDField(source="meter_id")
    eventType = serializers.ChoiceField(source="event_type", choices=UsageEventType.choices)
    quantity = serializers.IntegerField()
    previousValue = serializers.IntegerField(source="previous_value")
    newValue = serializers.IntegerField(source="new_value")
    includedQuantity = serializers.IntegerField(source="included_quantity")
    quantityLimit = serializers.IntegerField(source="quantity_limit", allow_null=True)
    billableDelta = serializers.IntegerField(source="billable_delta")
    idempotencyKey = serializers.CharField(source="idempotency_key", allow_null=True)
    eventTime = UTCDateTimeField(source="event_time")
    createdAt = UTCDateTimeField(source="created_at")
    source = serializers.ChoiceField(choices=UsageSource.choices)
    performedBy = serializers.CharField(source="performed_by")
    actor = serializers.SerializerMethodField()
    adjustmentReason = serializers.CharField(source="adjustment_reason")
    adjustsEventId = serializers.UUIDField(source="adjusts_event_id", allow_null=True)
    metadata = serializers.JSONField()
    stripeDeliveryStatus = serializers.ChoiceField(source="stripe_delivery_status", choices=StripeDeliveryStatus.choices)
    stripeEventIdentifier = serializers.CharField(source="stripe_event_identifier")
    stripeDeliveryError = serializers.CharField(source="stripe_delivery_error")
    deliveredAt = UTCDateTimeField(source="delivered_at", allow_null=True)

    @extend_schema_field(ActorSerializer(allow_null=True))
    def get_actor(self, event) -> dict | None:
        if not event.actor_kind:
            return None
        return {"kind": event.actor_kind, "id": event.actor_id, "label": event.actor_label}


class UsageSnapshotSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    companyId = serializers.UUIDField(source="company_id")
    featureCode = serializers.CharField(source="feature.code")
    meterId = serializers.UUIDField(source="meter_id")
    periodStart = UTCDateTimeField(source="meter.period_start")
    periodEnd = UTCDateTimeField(source="meter.period_end", allow_null=True)
    absoluteValue = serializers.IntegerField(source="absolute_value")
    billableValue = serializers.IntegerField(source="billable_value")
    snapshotType = serializers.ChoiceField(source="snapshot_type", choices=UsageSnapshotType.choices)
    reason = serializers.CharField()
    createdBy = serializers.CharField(source="created_by")
    triggerEventId = serializers.UUIDField(source="trigger_event_id", allow_null=True)
    metadata = serializers.JSONField()
    createdAt = UTCDateTimeField(source="created_at")
