"""camelCase input and output of the notifications API (SPEC §11)."""

from __future__ import annotations

from rest_framework import serializers

from config.api.pagination import PageQuerySerializer
from config.api.serializers import StrictBooleanField, StrictCharField, StrictSerializer, StrictUUIDField, UTCDateTimeField

from ..models import DisabledReason, EventType
from ..targets import MAX_URL_LENGTH, TARGET_URL_PATTERN

EVENT_TYPE_HELP = "Event types to receive; empty or omitted means every type."


class _EventTypesField(serializers.ListField):
    def __init__(self, **kwargs):
        super().__init__(
            child=serializers.ChoiceField(choices=EventType.values), max_length=len(EventType.values) * 2, **kwargs
        )


class _TargetUrlField(StrictCharField):
    schema_pattern = TARGET_URL_PATTERN  # config.api.schema puts it in the OpenAPI schema


# --- Endpoints --------------------------------------------------------------------------


class EndpointCreateInputSerializer(StrictSerializer):
    url = _TargetUrlField(max_length=MAX_URL_LENGTH, help_text="http(s) URL that receives POSTed events.")
    eventTypes = _EventTypesField(required=False, allow_empty=True, help_text=EVENT_TYPE_HELP)
    description = StrictCharField(max_length=200, required=False, allow_blank=True)


class EndpointUpdateInputSerializer(StrictSerializer):
    url = _TargetUrlField(max_length=MAX_URL_LENGTH, required=False)
    eventTypes = _EventTypesField(required=False, allow_empty=True, help_text=EVENT_TYPE_HELP)
    enabled = StrictBooleanField(required=False)
    description = StrictCharField(max_length=200, required=False, allow_blank=True)


class EndpointSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    url = serializers.CharField(read_only=True)
    eventTypes = serializers.ListField(
        source="event_types", child=serializers.ChoiceField(choices=EventType.values), read_only=True
    )
    description = serializers.CharField(read_only=True)
    enabled = serializers.BooleanField(read_only=True)
    disabledReason = serializers.ChoiceField(
        source="disabled_reason",
        choices=[c for c in DisabledReason.values if c],
        allow_null=True,
        read_only=True,
        help_text="Why the endpoint is disabled: manual, failing (three days of failures) or gone (410).",
    )
    failingSince = UTCDateTimeField(source="failing_since", allow_null=True, read_only=True)
    createdAt = UTCDateTimeField(source="created_at", read_only=True)
    updatedAt = UTCDateTimeField(source="updated_at", read_only=True)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["disabledReason"] = instance.disabled_reason or None
        return data


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="Signing secret (whsec_…). Shown only in this answer: store it now."
    )


# --- Events -----------------------------------------------------------------------------


class EventSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    type = serializers.ChoiceField(choices=EventType.values, read_only=True)
    createdAt = UTCDateTimeField(source="created_at", read_only=True)
    product = serializers.CharField(source="product.code", read_only=True, help_text="The product's code.")
    data = serializers.JSONField(read_only=True, help_text="Payload of the event type (docs/notifications.md).")


class EndpointListQuerySerializer(PageQuerySerializer):
    pass


class EventListQuerySerializer(PageQuerySerializer):
    type = serializers.ChoiceField(choices=EventType.values, required=False)
    after = StrictUUIDField(required=False, help_text="An event id: list the events created after it.")


class EndpointDeletedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    deleted = serializers.BooleanField()
