"""camelCase request and response shapes of the usage API (SPEC §5)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.pagination import PageQuerySerializer
from config.api.serializers import (
    JSONObjectField,
    PlainInputFastPathMixin,
    StrictIntegerField,
    StrictSerializer,
    UTCDateTimeField,
    iso_utc,
)

from ..models import UsageEventType
from ..services import MAX_BATCH_SIZE


class _CompanyRefSerializer(StrictSerializer):
    """`companyId` or `externalOrgId`, exactly one."""

    companyId = serializers.UUIDField(source="company_id", required=False)
    externalOrgId = serializers.CharField(source="external_org_id", required=False, max_length=200)

    def validate(self, attrs):
        if ("company_id" in attrs) == ("external_org_id" in attrs):
            message = "Give exactly one of companyId and externalOrgId."
            raise serializers.ValidationError({"companyId": [message], "externalOrgId": [message]})
        return attrs


class UsageTrackSerializer(PlainInputFastPathMixin, _CompanyRefSerializer):
    """The one validated input of a track: `POST /usage/track` and every item
    of `POST /usage/track-batch` (which validates item by item, so that one bad
    event is an `error` result of its own)."""

    featureCode = serializers.CharField(source="feature_code", max_length=64)
    quantity = StrictIntegerField(min_value=1, default=1)
    idempotencyKey = serializers.CharField(source="idempotency_key", required=False, max_length=255)
    timestamp = UTCDateTimeField(required=False)
    metadata = JSONObjectField(required=False)


@extend_schema_field(UsageTrackSerializer)
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
    events = serializers.ListField(child=_BatchItemField(), allow_empty=False, max_length=MAX_BATCH_SIZE)


class UsageSetSerializer(_CompanyRefSerializer):
    featureCode = serializers.CharField(source="feature_code", max_length=64)
    absoluteValue = StrictIntegerField(source="absolute_value", min_value=0)
    reason = serializers.CharField(max_length=2000)
    performedBy = serializers.CharField(source="performed_by", required=False, allow_blank=True, max_length=200)
    idempotencyKey = serializers.CharField(source="idempotency_key", required=False, max_length=255)
    metadata = JSONObjectField(required=False)


class UsageAdjustSerializer(_CompanyRefSerializer):
    # `delta ≠ 0` is checked once, by the service (metering.rules.check_quantity).
    featureCode = serializers.CharField(source="feature_code", max_length=64)
    delta = StrictIntegerField()
    reason = serializers.CharField(max_length=2000)
    adjustsEventId = serializers.UUIDField(source="adjusts_event_id", required=False, allow_null=True)
    performedBy = serializers.CharField(source="performed_by", required=False, allow_blank=True, max_length=200)
    idempotencyKey = serializers.CharField(source="idempotency_key", required=False, max_length=255)
    metadata = JSONObjectField(required=False)


class UsageHistoryQuerySerializer(_CompanyRefSerializer, PageQuerySerializer):
    featureCode = serializers.CharField(source="feature_code", required=False, max_length=64)
    eventType = serializers.ChoiceField(source="event_type", choices=UsageEventType.values, required=False)
    includeDelivered = serializers.BooleanField(source="include_delivered", default=True)


class UsageSnapshotQuerySerializer(_CompanyRefSerializer, PageQuerySerializer):
    featureCode = serializers.CharField(source="feature_code", required=False, max_length=64)


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


class ApiErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    httpStatus = serializers.IntegerField()
    details = serializers.DictField()


class BatchItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["ok", "duplicate", "error"])
    result = UsageResultSerializer(required=False)
    error = ApiErrorSerializer(required=False)


class UsageTrackBatchResponseSerializer(serializers.Serializer):
    results = BatchItemResultSerializer(many=True)


class UsageEventSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    companyId = serializers.UUIDField(source="company_id")
    featureCode = serializers.CharField(source="feature.code")
    meterId = serializers.UUIDField(source="meter_id")
    eventType = serializers.CharField(source="event_type")
    quantity = serializers.IntegerField()
    previousValue = serializers.IntegerField(source="previous_value")
    newValue = serializers.IntegerField(source="new_value")
    includedQuantity = serializers.IntegerField(source="included_quantity")
    quantityLimit = serializers.IntegerField(source="quantity_limit", allow_null=True)
    billableDelta = serializers.IntegerField(source="billable_delta")
    idempotencyKey = serializers.CharField(source="idempotency_key", allow_null=True)
    eventTime = serializers.SerializerMethodField()
    createdAt = serializers.SerializerMethodField()
    source = serializers.CharField()
    performedBy = serializers.CharField(source="performed_by")
    actor = serializers.SerializerMethodField()
    adjustmentReason = serializers.CharField(source="adjustment_reason")
    adjustsEventId = serializers.UUIDField(source="adjusts_event_id", allow_null=True)
    metadata = serializers.JSONField()
    stripeDeliveryStatus = serializers.CharField(source="stripe_delivery_status")
    stripeEventIdentifier = serializers.CharField(source="stripe_event_identifier")
    stripeDeliveryError = serializers.CharField(source="stripe_delivery_error")
    deliveredAt = serializers.SerializerMethodField()

    def get_eventTime(self, event) -> str:
        return iso_utc(event.event_time)

    def get_createdAt(self, event) -> str:
        return iso_utc(event.created_at)

    def get_deliveredAt(self, event) -> str | None:
        return iso_utc(event.delivered_at)

    def get_actor(self, event) -> dict | None:
        if not event.actor_kind:
            return None
        return {"kind": event.actor_kind, "id": event.actor_id, "label": event.actor_label}


class UsageSnapshotSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    companyId = serializers.UUIDField(source="company_id")
    featureCode = serializers.CharField(source="feature.code")
    meterId = serializers.UUIDField(source="meter_id")
    periodStart = serializers.SerializerMethodField()
    periodEnd = serializers.SerializerMethodField()
    absoluteValue = serializers.IntegerField(source="absolute_value")
    billableValue = serializers.IntegerField(source="billable_value")
    snapshotType = serializers.CharField(source="snapshot_type")
    reason = serializers.CharField()
    createdBy = serializers.CharField(source="created_by")
    triggerEventId = serializers.UUIDField(source="trigger_event_id", allow_null=True)
    metadata = serializers.JSONField()
    createdAt = serializers.SerializerMethodField()

    def get_periodStart(self, snapshot) -> str:
        return iso_utc(snapshot.meter.period_start)

    def get_periodEnd(self, snapshot) -> str | None:
        return iso_utc(snapshot.meter.period_end)

    def get_createdAt(self, snapshot) -> str:
        return iso_utc(snapshot.created_at)
