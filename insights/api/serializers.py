"""camelCase shapes of the insights API (SPEC §8)."""

from __future__ import annotations

from datetime import timedelta

from rest_framework import serializers

from config.api.serializers import StrictSerializer, UTCDateOrDateTimeField, UTCDateTimeField

from ..selectors import GROUP_BY_CHOICES, STATS_MAX_LIMIT

MAX_RANGE = timedelta(days=5 * 366)


class UsageStatsQuerySerializer(StrictSerializer):
    companyId = serializers.UUIDField(source="company_id", required=False)
    externalOrgId = serializers.CharField(source="external_org_id", required=False, max_length=200)
    featureCode = serializers.CharField(source="feature_code", required=False, max_length=64)
    # `from`/`to` are Python keywords: declared below.
    groupBy = serializers.ChoiceField(source="group_by", choices=GROUP_BY_CHOICES, default="day")
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=STATS_MAX_LIMIT, default=STATS_MAX_LIMIT,
        help_text=f"Rows per page (default and max {STATS_MAX_LIMIT}).",
    )
    cursor = serializers.CharField(
        required=False, allow_blank=True, max_length=1000, help_text="The `nextCursor` of the previous page (empty: the first)."
    )

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = UTCDateOrDateTimeField(source="start", help_text="Inclusive: an ISO date or datetime (UTC).")
        fields["to"] = UTCDateOrDateTimeField(source="end", help_text="Exclusive: an ISO date or datetime (UTC).")
        return fields

    def validate(self, attrs):
        if ("company_id" in attrs) == ("external_org_id" in attrs):
            message = "Give exactly one of companyId and externalOrgId."
            raise serializers.ValidationError({"companyId": [message], "externalOrgId": [message]})
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"to": ["Must be after `from`."]})
        if attrs["end"] - attrs["start"] > MAX_RANGE:
            raise serializers.ValidationError({"to": ["At most 5 years after `from`."]})
        return attrs


class UsageStatSerializer(serializers.Serializer):
    periodStart = UTCDateTimeField(source="period_start", help_text="Start of the day, ISO week or month (UTC).")
    featureCode = serializers.CharField(source="feature_code")
    quantity = serializers.IntegerField(help_text="Net usage recorded in the period (corrections included).")
    billableQuantity = serializers.IntegerField(source="billable_quantity")
    events = serializers.IntegerField(help_text="Number of usage events.")

