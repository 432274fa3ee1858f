"""camelCase request/response shapes of the billing API (SPEC §6)."""

from __future__ import annotations

from django.core.validators import RegexValidator
from rest_framework import serializers

from companies.api.serializers import SmartLinkHintsSerializer
from config.api.serializers import (
    MAX_BIGINT,
    StrictCharField,
    StrictEmailField,
    StrictIntegerField,
    StrictSerializer,
    StrictUUIDField,
    UTCDateTimeField,
)

from ..models import SubscriptionStatus

STRIPE_ID_MAX = 255


# Stripe's ids are letters, digits and underscores (`cs_test_a1B2`, `sub_1Mx`):
# anything else names nothing and is refused before Stripe is called.
_STRIPE_ID = RegexValidator(r"^[A-Za-z0-9_]+$", "Not a Stripe id (letters, digits and underscores).")


def _stripe_id(**kwargs) -> StrictCharField:
    return StrictCharField(max_length=STRIPE_ID_MAX, trim_whitespace=True, validators=[_STRIPE_ID], **kwargs)


def _optional_stripe_id(**kwargs) -> StrictCharField:
    return _stripe_id(required=False, allow_null=True, allow_blank=True, **kwargs)


# --- input ---------------------------------------------------------------------------


class CheckoutClaimInputSerializer(StrictSerializer):
    companyId = StrictUUIDField(source="company_id")
    checkoutSessionId = _stripe_id(source="checkout_session_id")


class SubscriptionLinkInputSerializer(StrictSerializer):
    companyId = StrictUUIDField(source="company_id")
    stripeSubscriptionId = _stripe_id(source="stripe_subscription_id")
    stripeCustomerId = _optional_stripe_id(source="stripe_customer_id")
    tierCode = StrictCharField(max_length=64, required=False, allow_null=True, allow_blank=True, source="tier_code")
    displayName = StrictCharField(
        max_length=200, required=False, allow_null=True, allow_blank=True, source="display_name"
    )


class OnboardInputSerializer(StrictSerializer):
    at_most_one_of = ("checkoutSessionId", "stripeSubscriptionId")

    externalOrgId = StrictCharField(max_length=200, source="external_org_id")
    hints = SmartLinkHintsSerializer(required=False)
    tierCode = StrictCharField(max_length=64, required=False, allow_null=True, allow_blank=True, source="tier_code")
    checkoutSessionId = _optional_stripe_id(source="checkout_session_id")
    stripeSubscriptionId = _optional_stripe_id(source="stripe_subscription_id")
    stripeCustomerId = _optional_stripe_id(source="stripe_customer_id")
    contactEmail = StrictEmailField(
        max_length=254, required=False, allow_null=True, allow_blank=True, source="contact_email"
    )
    contactName = StrictCharField(
        max_length=200, required=False, allow_null=True, allow_blank=True, source="contact_name"
    )
    createdAt = UTCDateTimeField(required=False, allow_null=True, source="created_at")


# --- output --------------------------------------------------------------------------


class CheckoutClaimResultSerializer(serializers.Serializer):
    subscriptionId = serializers.UUIDField(source="subscription.id")
    stripeSubscriptionId = serializers.CharField(source="subscription.stripe_subscription_id")
    alreadyClaimed = serializers.BooleanField(source="already_claimed")
    tierCode = serializers.CharField(source="tier_code", allow_null=True)
    featuresApplied = serializers.ListField(child=serializers.CharField(), source="features_applied")


class SubscriptionLinkResultSerializer(serializers.Serializer):
    subscriptionId = serializers.UUIDField(source="subscription.id")
    alreadyLinked = serializers.BooleanField(source="already_linked")
    featuresApplied = serializers.ListField(child=serializers.CharField(), source="features_applied")


class TierRefSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class ActiveSubscriptionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    stripeSubscriptionId = serializers.CharField(source="stripe_subscription_id")
    status = serializers.ChoiceField(choices=SubscriptionStatus.choices)
    displayName = serializers.CharField(source="display_name")
    tier = TierRefSerializer(allow_null=True)
    currentPeriodEnd = UTCDateTimeField(source="current_period_end", allow_null=True)
    cancelAtPeriodEnd = serializers.BooleanField(source="cancel_at_period_end")


class BillingStatusSerializer(serializers.Serializer):
    companyId = serializers.UUIDField(source="company.id")
    hasBillingProfile = serializers.SerializerMethodField()
    stripeCustomerId = serializers.SerializerMethodField()
    activeSubscriptions = ActiveSubscriptionSerializer(source="active_subscriptions", many=True)
    enabledFeaturesCount = serializers.IntegerField(source="enabled_features_count")

    def get_hasBillingProfile(self, status) -> bool:
        return status.billing_profile is not None

    def get_stripeCustomerId(self, status) -> str | None:
        return status.billing_profile.stripe_customer_id if status.billing_profile else None


class OnboardBillingStatusSerializer(serializers.Serializer):
    claimed = serializers.BooleanField(help_text="The checkout session is claimed by this company.")
    linked = serializers.BooleanField(help_text="The Stripe subscription is linked to this company.")
    tierApplied = serializers.BooleanField(source="tier_applied", help_text="This call applied a tier.")
    tierCode = serializers.CharField(
        source="tier_code", allow_null=True, help_text="The subscription's tier, or the tier applied."
    )
    subscriptionId = serializers.UUIDField(source="subscription_id", allow_null=True)
    stripeSubscriptionId = serializers.CharField(source="stripe_subscription_id", allow_null=True)


class OnboardResultSerializer(serializers.Serializer):
    companyId = serializers.UUIDField(source="company.id")
    companyName = serializers.CharField(source="company.name")
    shortId = serializers.CharField(source="company.short_id")
    linkStatus = serializers.ChoiceField(source="link_status", choices=["created", "linked", "already_linked"])
    billingStatus = OnboardBillingStatusSerializer(source="billing_status")


# --- customers, cards, subscriptions managed from SaaSDesk ---------------------------


class CustomerEnsureInputSerializer(StrictSerializer):
    companyId = serializers.UUIDField()
    email = serializers.EmailField(max_length=254, required=False, allow_null=True, allow_blank=True)
    name = serializers.CharField(max_length=200, required=False, allow_null=True, allow_blank=True)


class CustomerEnsureResultSerializer(serializers.Serializer):
    stripeCustomerId = serializers.CharField(source="stripe_customer_id")
    created = serializers.BooleanField()


class CompanyIdInputSerializer(StrictSerializer):
    companyId = serializers.UUIDField()


class CompanyIdQuerySerializer(StrictSerializer):
    companyId = serializers.UUIDField()


class SetupIntentResultSerializer(serializers.Serializer):
    setupIntentId = serializers.CharField(source="setup_intent_id")
    clientSecret = serializers.CharField(source="client_secret", help_text="For Stripe.js confirmCardSetup in the product's page.")
    stripeCustomerId = serializers.CharField(source="stripe_customer_id")


class PaymentMethodSerializer(serializers.Serializer):
    id = serializers.CharField()
    brand = serializers.CharField()
    last4 = serializers.CharField()
    expMonth = serializers.IntegerField(source="exp_month", allow_null=True)
    expYear = serializers.IntegerField(source="exp_year", allow_null=True)
    isDefault = serializers.BooleanField(source="is_default")


class PaymentMethodDefaultInputSerializer(StrictSerializer):
    companyId = serializers.UUIDField()
    paymentMethodId = _stripe_id()


class SubscriptionCreateInputSerializer(StrictSerializer):
    companyId = serializers.UUIDField()
    tierCode = serializers.CharField(max_length=64)
    trialPeriodDays = serializers.IntegerField(min_value=1, max_value=730, required=False, allow_null=True)
    paymentMethodId = _optional_stripe_id()


class SubscriptionChangeInputSerializer(StrictSerializer):
    tierCode = serializers.CharField(max_length=64)
    prorationBehavior = serializers.ChoiceField(
        choices=["create_prorations", "none", "always_invoice"], required=False, default="create_prorations"
    )


class SubscriptionCancelInputSerializer(StrictSerializer):
    atPeriodEnd = serializers.BooleanField(required=False, default=True)
    reason = serializers.CharField(max_length=500)


class SubscriptionSerializer(serializers.Serializer):
    """The subscription answer of SPEC §6."""

    id = serializers.UUIDField()
    stripeSubscriptionId = serializers.CharField(source="stripe_subscription_id")
    stripeCustomerId = serializers.CharField(source="stripe_customer_id")
    status = serializers.CharField()
    tierCode = serializers.CharField(source="tier.code", allow_null=True, default=None)
    displayName = serializers.CharField(source="display_name")
    currentPeriodStart = UTCDateTimeField(source="current_period_start", allow_null=True)
    currentPeriodEnd = UTCDateTimeField(source="current_period_end", allow_null=True)
    cancelAtPeriodEnd = serializers.BooleanField(source="cancel_at_period_end")
    trialEnd = UTCDateTimeField(source="trial_end", allow_null=True)
    canceledAt = UTCDateTimeField(source="canceled_at", allow_null=True)
    createdAt = UTCDateTimeField(source="created_at")


# --- credit purchases (SPEC §7) ------------------------------------------------------------


class PurchaseCreateInputSerializer(StrictSerializer):
    companyId = serializers.UUIDField()
    credits = serializers.IntegerField(min_value=1, max_value=10_000_000)
    amount = serializers.IntegerField(min_value=1, max_value=100_000_000, help_text="Price in minor units (cents).")
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", help_text="ISO 4217, e.g. eur.")
    paymentMethodId = serializers.CharField(required=False, allow_blank=True, max_length=255)
    offSession = serializers.BooleanField(required=False, default=False)


class PurchaseSerializer(serializers.Serializer):
    purchaseId = serializers.UUIDField(source="pk")
    companyId = serializers.UUIDField(source="company_id")
    paymentIntentId = serializers.CharField(source="stripe_payment_intent_id")
    status = serializers.CharField()
    credits = serializers.IntegerField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    amountRefunded = serializers.IntegerField(source="amount_refunded")
    creditsReversed = serializers.IntegerField(source="credits_reversed")
    disputed = serializers.BooleanField()
    declineCode = serializers.CharField(source="failure_code")
    ledgerEntryId = serializers.UUIDField(source="ledger_entry_id", allow_null=True)
    createdAt = UTCDateTimeField(source="created_at")


class PurchaseCreateResultSerializer(PurchaseSerializer):
    clientSecret = serializers.CharField(allow_null=True, help_text="For Stripe.js when the PaymentIntent still needs a card.")


# --- invoices (SPEC §8) ------------------------------------------------------------------------


class InvoiceSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    companyId = serializers.UUIDField(source="company_id")
    stripeInvoiceId = serializers.CharField(source="stripe_invoice_id")
    number = serializers.CharField()
    status = serializers.CharField()
    billingReason = serializers.CharField(source="billing_reason")
    currency = serializers.CharField()
    subtotal = serializers.IntegerField(help_text="Minor units, as all amounts here.")
    tax = serializers.IntegerField()
    total = serializers.IntegerField()
    amountPaid = serializers.IntegerField(source="amount_paid")
    amountDue = serializers.IntegerField(source="amount_due")
    periodStart = UTCDateTimeField(source="period_start", allow_null=True)
    periodEnd = UTCDateTimeField(source="period_end", allow_null=True)
    hostedInvoiceUrl = serializers.CharField(source="hosted_invoice_url")
    invoicePdf = serializers.CharField(source="invoice_pdf")
    createdAt = UTCDateTimeField(source="stripe_created_at")


class InvoiceLineSerializer(serializers.Serializer):
    description = serializers.CharField()
    quantity = serializers.IntegerField(allow_null=True)
    unitAmount = serializers.FloatField(allow_null=True)
    amount = serializers.IntegerField()
    priceId = serializers.CharField(allow_null=True)
    periodStart = serializers.CharField(allow_null=True)
    periodEnd = serializers.CharField(allow_null=True)


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True)


class InvoicesListQuerySerializer(StrictSerializer):
    companyId = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["draft", "open", "paid", "void", "uncollectible"], required=False)


# --- statements (SPEC §8) ----------------------------------------------------------------------


class StatementQuerySerializer(StrictSerializer):
    companyId = serializers.UUIDField()
    # `from` is a Python keyword: declared below under its API name.
    to = serializers.DateField(help_text="Last day included (UTC).")
    output = serializers.ChoiceField(choices=["json", "html", "csv"], required=False, default="json",
                                     help_text="json (default), or the rendered html / csv.")


StatementQuerySerializer._declared_fields["from"] = serializers.DateField(help_text="First day included (UTC).")


class StatementSendInputSerializer(StrictSerializer):
    companyId = serializers.UUIDField()
    to = serializers.DateField()
    email = serializers.EmailField(required=False, help_text="Default: the company's primary contact.")


StatementSendInputSerializer._declared_fields["from"] = serializers.DateField()


class StatementBillingAddressSerializer(serializers.Serializer):
    line1 = serializers.CharField(required=False)
    line2 = serializers.CharField(required=False)
    city = serializers.CharField(required=False)
    postalCode = serializers.CharField(required=False)
    state = serializers.CharField(required=False)
    country = serializers.CharField(required=False)


class StatementBillToSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The company's name.")
    email = serializers.CharField(allow_blank=True, help_text="Billing email with this product; \"\" if not given.")
    address = StatementBillingAddressSerializer(help_text="Billing address; only the parts given.")
    taxId = serializers.CharField(allow_blank=True)
    country = serializers.CharField(allow_blank=True, help_text="The company's country (ISO 3166-1 alpha-2).")


class StatementSerializer(serializers.Serializer):
    companyId = serializers.UUIDField()
    billTo = StatementBillToSerializer(help_text="The statement header: the company's billing profile (SPEC §3).")
    currency = serializers.CharField()
    baseFees = serializers.ListField(child=serializers.DictField())
    usage = serializers.ListField(child=serializers.DictField())
    credits = serializers.DictField(child=serializers.IntegerField())
    invoices = serializers.ListField(child=serializers.DictField())
    total = serializers.IntegerField(help_text="Minor units: base fees + usage.")


StatementSerializer._declared_fields["from"] = serializers.DateField()
StatementSerializer._declared_fields["to"] = serializers.DateField()


class StatementSentSerializer(serializers.Serializer):
    sent = serializers.BooleanField()
    email = serializers.EmailField()
    total = serializers.IntegerField()
    currency = serializers.CharField()


# --- estimate (SPEC §8) --------------------------------------------------------------------------

MAX_ESTIMATE_FEATURES = 100


class EstimateInputSerializer(StrictSerializer):
    companyId = StrictUUIDField()
    usage = serializers.DictField(
        child=StrictIntegerField(min_value=0, max_value=MAX_BIGINT),
        allow_empty=False,
        help_text="Feature code → quantity (a non-negative integer), as one period's total usage.",
    )

    def validate_usage(self, usage: dict) -> dict:
        if len(usage) > MAX_ESTIMATE_FEATURES:
            raise serializers.ValidationError(f"At most {MAX_ESTIMATE_FEATURES} features.")
        return usage


class EstimateLineSerializer(serializers.Serializer):
    featureCode = serializers.CharField()
    quantity = serializers.IntegerField()
    includedQuantity = serializers.IntegerField()
    billableQuantity = serializers.IntegerField()
    unitAmount = serializers.FloatField(allow_null=True, help_text="Minor units per unit (may have decimals); null: no price.")
    amount = serializers.IntegerField(help_text="Minor units, rounded half-up once.")


class EstimateSerializer(serializers.Serializer):
    companyId = serializers.UUIDField()
    currency = serializers.CharField()
    lines = EstimateLineSerializer(many=True)
    total = serializers.IntegerField(help_text="Minor units.")
