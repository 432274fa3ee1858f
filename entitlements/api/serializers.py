"""camelCase request/response shapes of the entitlements API (SPEC §4)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.serializers import (
    JSONObjectField,
    StrictBooleanField,
    StrictCharField,
    StrictUUIDField,
    StrictIntegerField,
    StrictSerializer,
    UTCDateTimeField,
    iso_utc,
)

from ..models import OVERRIDE_SOURCES, AccessSource, FeatureKind
from ..selectors import FeatureCheck, tier_stripe_price_ids


class FeatureCheckSerializer(serializers.Serializer):
    """The check result. Fields are declared for the OpenAPI schema; the
    representation is a direct mapping because this is the hottest response."""

    featureCode = serializers.CharField()
    featureName = serializers.CharField()
    kind = serializers.ChoiceField(choices=FeatureKind.choices)
    isEnabled = serializers.BooleanField()
    canUse = serializers.BooleanField()
    hasQuantity = serializers.BooleanField()
    currentUsage = serializers.IntegerField()
    quantityLimit = serializers.IntegerField(allow_null=True, help_text="null = unlimited")
    includedQuantity = serializers.IntegerField()
    remaining = serializers.IntegerField(allow_null=True, help_text="null = unlimited")
    configValues = serializers.JSONField(help_text="The feature's defaultConfig merged with the company's config.")
    source = serializers.ChoiceField(choices=AccessSource.choices, allow_null=True)
    validUntil = serializers.DateTimeField(allow_null=True)
    tierCode = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(
        choices=["active", "limit_reached", "no_credits", "disabled", "not_granted", "suspended"]
    )
    creditCost = serializers.IntegerField(allow_null=True, help_text="Credits per unit beyond the included quantity.")
    creditsAvailable = serializers.IntegerField(
        allow_null=True, help_text="Credits the wallet can spend now (null unless the feature is credit-priced)."
    )
    usagePercent = serializers.IntegerField(allow_null=True, help_text="Usage as a percentage of the limit (metered, with a limit).")
    resetPeriod = serializers.CharField(allow_null=True)
    periodStart = serializers.DateTimeField(allow_null=True)
    resetAt = serializers.DateTimeField(allow_null=True, help_text="When usage resets (null: never).")
    reason = serializers.CharField(help_text="One sentence a support agent can read to the customer.")

    def to_representation(self, check: FeatureCheck) -> dict:
        return {
            "featureCode": check.feature_code,
            "featureName": check.feature_name,
            "kind": check.kind,
            "isEnabled": check.is_enabled,
            "canUse": check.can_use,
            "hasQuantity": check.has_quantity,
            "currentUsage": check.current_usage,
            "quantityLimit": check.quantity_limit,
            "includedQuantity": check.included_quantity,
            "remaining": check.remaining,
            "configValues": check.config_values,
            "source": check.source,
            "validUntil": iso_utc(check.valid_until),
            "tierCode": check.tier_code,
            "status": check.status,
            "creditCost": check.credit_cost,
            "creditsAvailable": check.credits_available,
            "usagePercent": check.usage_percent,
            "resetPeriod": check.reset_period,
            "periodStart": iso_utc(check.period_start),
            "resetAt": iso_utc(check.reset_at),
            "reason": check.reason,
        }


class OrgFeatureListSerializer(serializers.Serializer):
    companyId = serializers.UUIDField()
    features = FeatureCheckSerializer(many=True)


class FeatureAccessPatchSerializer(StrictSerializer):
    isEnabled = StrictBooleanField(required=False, source="is_enabled")
    quantityLimit = StrictIntegerField(
        required=False, allow_null=True, min_value=0, source="quantity_limit", help_text="null = unlimited"
    )
    includedQuantity = StrictIntegerField(required=False, min_value=0, source="included_quantity")
    config = JSONObjectField(
        required=False, help_text="Merged key by key into the current config; a key set to null is removed."
    )
    source = serializers.ChoiceField(
        required=False,
        choices=OVERRIDE_SOURCES,
        help_text="The override's source (default api). The tier layer's `subscription` changes only by applying a tier.",
        error_messages={
            "invalid_choice": '"{input}" is not an override source: give manual, trial, promotion or api '
            "(the subscription layer changes only by applying a tier)."
        },
    )
    validFrom = UTCDateTimeField(required=False, allow_null=True, source="valid_from")
    validUntil = UTCDateTimeField(required=False, allow_null=True, source="valid_until")
    inherit = serializers.ListField(
        required=False,
        child=serializers.ChoiceField(choices=["isEnabled", "quantityLimit", "includedQuantity", "config"]),
        help_text="Fields dropped from the override, so the tier's value shows again.",
    )
    reason = StrictCharField(required=False, allow_blank=True, max_length=2000, trim_whitespace=True)


INHERIT_FIELDS = {"isEnabled": "is_enabled", "quantityLimit": "quantity_limit", "includedQuantity": "included_quantity", "config": "config"}


class OverrideDeleteSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=2000, trim_whitespace=True, help_text="Why the override is removed.")


class FeatureKeptSerializer(serializers.Serializer):
    featureCode = serializers.CharField()
    source = serializers.CharField()
    validUntil = serializers.DateTimeField(allow_null=True)

    def to_representation(self, item) -> dict:
        return {"featureCode": item["featureCode"], "source": item["source"], "validUntil": iso_utc(item["validUntil"])}


class FeatureOverrideSerializer(StrictSerializer):
    includedQuantity = StrictIntegerField(required=False, min_value=0, source="included_quantity")
    quantityLimit = StrictIntegerField(required=False, allow_null=True, min_value=0, source="quantity_limit")
    isEnabled = StrictBooleanField(required=False, source="is_enabled")
    config = JSONObjectField(required=False)


class TierApplySerializer(StrictSerializer):
    companyId = StrictUUIDField(source="company_id")
    features = serializers.DictField(
        child=FeatureOverrideSerializer(), required=False, help_text="Overrides on top of the tier, by feature code."
    )
    reason = StrictCharField(required=False, allow_blank=True, max_length=2000)


class SubscriptionCreateSerializer(TierApplySerializer):
    tierCode = StrictCharField(max_length=64, source="tier_code")


class TierApplyResultSerializer(serializers.Serializer):
    tierCode = serializers.CharField(source="tier_code")
    featuresApplied = serializers.ListField(child=serializers.CharField(), source="features_applied")
    featuresRemoved = serializers.ListField(child=serializers.CharField(), source="features_removed")
    featuresKept = FeatureKeptSerializer(
        many=True,
        source="features_kept",
        help_text="Features whose override (manual/trial/promotion/api) stays in force over the tier.",
    )


class TierListItemSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    isActive = serializers.BooleanField(source="is_active", help_text="The list shows active tiers only.")
    isDefault = serializers.BooleanField(
        source="is_default", help_text="Applied at onboarding when nothing else is asked, and when a subscription ends."
    )
    displayOrder = serializers.IntegerField(source="display_order")
    createdAt = UTCDateTimeField(source="created_at")
    updatedAt = UTCDateTimeField(source="updated_at")


class BaseFeeSerializer(serializers.Serializer):
    stripePriceId = serializers.CharField(allow_null=True)
    unitAmount = serializers.IntegerField(allow_null=True)
    currency = serializers.CharField()
    interval = serializers.CharField()


class TierFeatureSerializer(serializers.Serializer):
    code = serializers.CharField(source="feature.code")
    name = serializers.CharField(source="feature.name")
    kind = serializers.CharField(source="feature.kind")
    isEnabled = serializers.BooleanField(source="is_enabled")
    includedQuantity = serializers.IntegerField(source="included_quantity")
    quantityLimit = serializers.IntegerField(source="quantity_limit", allow_null=True)
    config = serializers.JSONField()
    configValues = serializers.SerializerMethodField()
    stripePriceId = serializers.SerializerMethodField()

    def get_configValues(self, tier_feature) -> dict:
        return {**(tier_feature.feature.default_config or {}), **(tier_feature.config or {})}

    def get_stripePriceId(self, tier_feature) -> str | None:
        return tier_feature.stripe_price_id or None


class TierDetailSerializer(TierListItemSerializer):
    baseFee = serializers.SerializerMethodField()
    features = TierFeatureSerializer(source="tier_features", many=True)
    stripePriceIds = serializers.SerializerMethodField()

    @extend_schema_field(BaseFeeSerializer(allow_null=True))
    def get_baseFee(self, tier) -> dict | None:
        if tier.base_fee_unit_amount is None and not tier.base_fee_stripe_price_id:
            return None
        return {
            "stripePriceId": tier.base_fee_stripe_price_id or None,
            "unitAmount": tier.base_fee_unit_amount,
            "currency": tier.base_fee_currency,
            "interval": tier.base_fee_interval,
        }

    def get_stripePriceIds(self, tier) -> list[str]:
        return tier_stripe_price_ids(tier=tier)


class ExplainLayerSerializer(serializers.Serializer):
    source = serializers.CharField()
    fields = serializers.JSONField(help_text="The values this layer sets (camelCase).")
    inForce = serializers.BooleanField()
    validFrom = serializers.DateTimeField(allow_null=True)
    validUntil = serializers.DateTimeField(allow_null=True)
    setBy = serializers.CharField(allow_null=True)
    setAt = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(allow_null=True)


class ExplainTierSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    via = serializers.CharField(allow_null=True, help_text="Which subscription or apply call put it there.")


class ExplainUsageSerializer(serializers.Serializer):
    periodStart = serializers.DateTimeField(allow_null=True)
    resetAt = serializers.DateTimeField(allow_null=True)
    currentUsage = serializers.IntegerField()
    quantityLimit = serializers.IntegerField(allow_null=True)
    lastEventAt = serializers.DateTimeField(allow_null=True)


class ExplainCreditsSerializer(serializers.Serializer):
    available = serializers.IntegerField(allow_null=True)
    creditCost = serializers.IntegerField(allow_null=True)


class ExplainRuleSerializer(serializers.Serializer):
    rule = serializers.CharField()
    passed = serializers.BooleanField()
    detail = serializers.CharField()


class FeatureExplainSerializer(FeatureCheckSerializer):
    """The check result plus how it was decided (SPEC §4 Explain); rendered
    by `metering.api.checks.explain_data`."""

    layers = ExplainLayerSerializer(many=True)
    tier = ExplainTierSerializer(allow_null=True)
    usage = ExplainUsageSerializer()
    credits = ExplainCreditsSerializer()
    rules = ExplainRuleSerializer(many=True)
