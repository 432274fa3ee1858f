"""camelCase shapes of the insights API (SPEC §8)."""

from __future__ import annotations

from datetime import timedelta

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.serializers import JSONObjectField, StrictSerializer, UTCDateOrDateTimeField, UTCDateTimeField

from ..health import COMPONENTS
from ..models import RiskLevel, SegmentType
from ..selectors import GROUP_BY_CHOICES, STATS_MAX_LIMIT, USAGE_GROUP_BY_CHOICES

MAX_RANGE = timedelta(days=5 * 366)


class _RangeQuerySerializer(StrictSerializer):
    """`from` (inclusive) and `to` (exclusive), at most 5 years apart."""

    def get_fields(self):
        # `from` is a Python keyword: declared here.
        fields = super().get_fields()
        fields["from"] = UTCDateOrDateTimeField(source="start", help_text="Inclusive: an ISO date or datetime (UTC).")
        fields["to"] = UTCDateOrDateTimeField(source="end", help_text="Exclusive: an ISO date or datetime (UTC).")
        return fields

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"to": ["Must be after `from`."]})
        if attrs["end"] - attrs["start"] > MAX_RANGE:
            raise serializers.ValidationError({"to": ["At most 5 years after `from`."]})
        return attrs


class UsageStatsQuerySerializer(_RangeQuerySerializer):
    companyId = serializers.UUIDField(source="company_id")
    featureCode = serializers.CharField(source="feature_code", required=False, max_length=64)
    groupBy = serializers.ChoiceField(
        source="group_by", choices=USAGE_GROUP_BY_CHOICES, default="day",
        help_text="`hour`: UTC hours of the last 35 days only.",
    )
    dimension = serializers.CharField(
        required=False, max_length=64,
        help_text="One of the feature's dimensions (needs featureCode): a row per value, "
        "the values beyond the period's 100 most frequent summed as `other`.",
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=STATS_MAX_LIMIT, default=STATS_MAX_LIMIT,
        help_text=f"Rows per page (default and max {STATS_MAX_LIMIT}).",
    )
    cursor = serializers.CharField(
        required=False, allow_blank=True, max_length=1000, help_text="The `nextCursor` of the previous page (empty: the first)."
    )


class UsageStatSerializer(serializers.Serializer):
    periodStart = UTCDateTimeField(source="period_start", help_text="Start of the hour, day, ISO week or month (UTC).")
    featureCode = serializers.CharField(source="feature_code")
    dimensionValue = serializers.CharField(
        source="dimension_value", required=False, allow_null=True,
        help_text="Only with `dimension`: the metadata value; null for events without it, "
        "`other` for the values beyond the period's top 100.",
    )
    quantity = serializers.IntegerField(help_text="Net usage recorded in the period (corrections included).")
    billableQuantity = serializers.IntegerField(source="billable_quantity")
    events = serializers.IntegerField(help_text="Number of usage events.")

    def to_representation(self, stat):
        data = super().to_representation(stat)
        if stat.dimension_value is None:
            data.pop("dimensionValue")
        elif stat.dimension_value == "":
            data["dimensionValue"] = None
        return data



class RevenueQuerySerializer(_RangeQuerySerializer):
    interval = serializers.ChoiceField(choices=GROUP_BY_CHOICES, default="month")


class RevenuePeriodSerializer(serializers.Serializer):
    periodStart = UTCDateTimeField(source="period_start")
    mrr = serializers.IntegerField(help_text="Closing MRR, minor units of the product's currency.")
    newMrr = serializers.IntegerField(source="new_mrr")
    expansionMrr = serializers.IntegerField(source="expansion_mrr")
    contractionMrr = serializers.IntegerField(source="contraction_mrr")
    churnedMrr = serializers.IntegerField(source="churned_mrr")
    reactivationMrr = serializers.IntegerField(source="reactivation_mrr")
    activeCustomers = serializers.IntegerField(source="active_customers")
    newCustomers = serializers.IntegerField(source="new_customers")
    churnedCustomers = serializers.IntegerField(source="churned_customers")
    customerChurnRate = serializers.FloatField(source="customer_churn_rate", help_text="0–100")
    revenueChurnRate = serializers.FloatField(source="revenue_churn_rate", help_text="0–100")
    arpu = serializers.IntegerField(help_text="MRR per active customer, rounded half-up.")
    creditsPurchased = serializers.IntegerField(source="credits_purchased", help_text="Credits bought in the period.")
    creditsUsed = serializers.IntegerField(source="credits_used", help_text="Credits used (usage and fallback charges).")
    creditUtilization = serializers.FloatField(
        source="credit_utilization",
        help_text="Credits used ÷ credits that came in (purchased + granted) × 100, two decimals; 0 when none came in.",
    )


class RevenueSerializer(serializers.Serializer):
    currency = serializers.CharField()
    periods = RevenuePeriodSerializer(many=True)


class HealthComponentSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=COMPONENTS, help_text="usage_trend, limit_pressure, credit_runway, payment_health, recency")
    value = serializers.IntegerField(min_value=0, max_value=100, help_text="0–100, higher is healthier.")
    weight = serializers.IntegerField(min_value=0, help_text="Relative weight in the score (settings).")
    detail = serializers.CharField(help_text="The component explained in one sentence.")


class HealthHistorySerializer(serializers.Serializer):
    date = serializers.DateField(help_text="UTC day.")
    score = serializers.IntegerField(min_value=0, max_value=100)
    riskLevel = serializers.ChoiceField(source="risk_level", choices=RiskLevel.choices)


class HealthSerializer(serializers.Serializer):
    score = serializers.IntegerField(min_value=0, max_value=100)
    riskLevel = serializers.ChoiceField(source="risk_level", choices=RiskLevel.choices)
    components = HealthComponentSerializer(many=True)
    computedAt = UTCDateTimeField(source="computed_at")
    history = HealthHistorySerializer(many=True, help_text="One score per UTC day over the last year, oldest first.")


class SegmentSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=SegmentType.choices)
    criteria = JSONObjectField(help_text='{"all": [...]} or {"any": [...]} of groups and conditions {field, op, value}.')
    parent = serializers.CharField(source="parent.slug", allow_null=True, default=None, help_text="The parent segment's slug.")
    customerCount = serializers.SerializerMethodField()
    percentOfTotal = serializers.SerializerMethodField()
    totalMrr = serializers.SerializerMethodField()
    avgMrr = serializers.SerializerMethodField()
    churnRate = serializers.SerializerMethodField()
    lastSyncedAt = UTCDateTimeField(source="last_synced_at", allow_null=True, help_text="Null until the first sync.")

    @extend_schema_field(serializers.IntegerField(help_text="Members at the last sync."))
    def get_customerCount(self, segment) -> int:
        return segment.stats.get("customer_count", 0)

    @extend_schema_field(serializers.FloatField(help_text="Members ÷ the product's customers × 100 (0–100)."))
    def get_percentOfTotal(self, segment) -> float:
        return segment.stats.get("percent_of_total", 0.0)

    @extend_schema_field(serializers.IntegerField(help_text="Σ members' MRR, minor units of the product's currency."))
    def get_totalMrr(self, segment) -> int:
        return segment.stats.get("total_mrr", 0)

    @extend_schema_field(serializers.IntegerField(help_text="totalMrr ÷ customerCount, rounded half-up (0 without members)."))
    def get_avgMrr(self, segment) -> int:
        return segment.stats.get("avg_mrr", 0)

    @extend_schema_field(serializers.FloatField(help_text="Members whose status is churned ÷ members × 100 (0–100)."))
    def get_churnRate(self, segment) -> float:
        return segment.stats.get("churn_rate", 0.0)
