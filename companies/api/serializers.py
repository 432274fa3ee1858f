"""camelCase input and output of the companies API (SPEC §3).

`CompanySerializer` is the one company representation of the whole API;
other apps (billing's onboarding) reuse it rather than writing their own."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.pagination import PageQuerySerializer
from config.api.serializers import (
    JSONObjectField,
    StrictCharField,
    StrictEmailField,
    StrictFloatField,
    StrictSerializer,
    StrictURLField,
    UniqueItemsListField,
    StrictUUIDField,
    UTCDateTimeField,
)
from config.api.serializers import StrictBooleanField  # noqa: F401  (re-exported)

from .. import profile
from ..domains import DOMAIN_INPUT_PATTERN
from ..models import Account, CompanyStatus, LinkType
from ..services import MAX_BULK_CONTACTS, PROFILE_FIELDS
from ..smart_link import DEFAULT_MIN_CONFIDENCE

MAX_RAW_DOMAIN = 2048  # before normalisation a domain may arrive as a full URL
MAX_HINT_EMAILS = 100


class DomainField(StrictCharField):
    """A domain as typed (`https://www.acme.com/pricing`), normalised by the
    service; null or "" is no domain."""

    schema_pattern = DOMAIN_INPUT_PATTERN

    def __init__(self, **kwargs):
        kwargs.update(required=False, allow_blank=True, allow_null=True, max_length=MAX_RAW_DOMAIN)
        super().__init__(**kwargs)


def _optional_text(max_length: int, **kwargs) -> serializers.CharField:
    return StrictCharField(
        max_length=max_length, required=False, allow_blank=True, allow_null=True, trim_whitespace=True, **kwargs
    )


# --- Output --------------------------------------------------------------------------


class BillingAddressOutputSerializer(serializers.Serializer):
    line1 = serializers.CharField(read_only=True, allow_null=True)
    line2 = serializers.CharField(read_only=True, allow_null=True)
    city = serializers.CharField(read_only=True, allow_null=True)
    postalCode = serializers.CharField(read_only=True, allow_null=True)
    state = serializers.CharField(read_only=True, allow_null=True)
    country = serializers.CharField(read_only=True, allow_null=True, help_text="ISO 3166-1 alpha-2.")


class CompanySerializer(serializers.Serializer):
    """The shared company fields plus, under the same names, the fields of
    its account with the key's product (`company.account`, set by
    companies.selectors.company_with_account) — never another product's."""

    id = serializers.UUIDField(read_only=True)
    shortId = serializers.CharField(source="short_id", read_only=True)
    name = serializers.CharField(read_only=True)
    domain = serializers.SerializerMethodField()
    status = serializers.ChoiceField(
        choices=CompanyStatus.values, source="account.status", read_only=True, help_text="This product's account."
    )
    mrr = serializers.IntegerField(
        source="account.mrr", read_only=True, help_text="Monthly recurring revenue of this product's account, minor units."
    )
    currency = serializers.CharField(source="account.currency", read_only=True, help_text="ISO 4217, lower case.")
    metadata = serializers.JSONField(source="account.metadata", read_only=True, help_text="This product's metadata.")
    # The profile, shared within the pool (null = not given).
    country = serializers.SerializerMethodField(help_text="ISO 3166-1 alpha-2, upper case.")
    industry = serializers.SerializerMethodField()
    size = serializers.SerializerMethodField()
    timezone = serializers.SerializerMethodField(help_text="IANA time zone.")
    locale = serializers.SerializerMethodField()
    # This product's account: billing details and derived (read-only) fields.
    billingEmail = serializers.SerializerMethodField()
    billingAddress = serializers.SerializerMethodField()
    taxId = serializers.SerializerMethodField()
    firstPurchaseAt = UTCDateTimeField(
        source="account.first_purchase_at", read_only=True, allow_null=True, help_text="First paid invoice."
    )
    lifetimeValue = serializers.IntegerField(
        source="account.lifetime_value", read_only=True, help_text="Sum of paid invoices, minor units of currency."
    )
    lastActivityAt = UTCDateTimeField(
        source="account.last_activity_at",
        read_only=True,
        allow_null=True,
        help_text="Last tracked usage (to the minute).",
    )
    healthScore = serializers.IntegerField(
        source="account.health_score", read_only=True, allow_null=True,
        help_text="0–100, from the health job (GET /companies/{companyId}/health explains it); null until computed.",
    )
    riskLevel = serializers.SerializerMethodField(help_text="low, medium, high or critical; null until computed.")
    createdAt = UTCDateTimeField(source="created_at", read_only=True)
    updatedAt = UTCDateTimeField(source="updated_at", read_only=True)

    @extend_schema_field(serializers.ChoiceField(choices=["low", "medium", "high", "critical"], allow_null=True))
    def get_riskLevel(self, company) -> str | None:
        return company.account.risk_level or None

    def get_domain(self, company) -> str | None:
        return company.domain or None

    def get_country(self, company) -> str | None:
        return company.country or None

    def get_industry(self, company) -> str | None:
        return company.industry or None

    @extend_schema_field(serializers.ChoiceField(choices=profile.CompanySize.values, allow_null=True))
    def get_size(self, company) -> str | None:
        return company.size or None

    def get_timezone(self, company) -> str | None:
        return company.timezone or None

    def get_locale(self, company) -> str | None:
        return company.locale or None

    def get_billingEmail(self, company) -> str | None:
        return company.account.billing_email or None

    @extend_schema_field(BillingAddressOutputSerializer(allow_null=True))
    def get_billingAddress(self, company) -> dict | None:
        address = company.account.billing_address
        return {key: address.get(key) for key in profile.BILLING_ADDRESS_FIELDS} if address else None

    def get_taxId(self, company) -> str | None:
        return company.account.tax_id or None

    def to_representation(self, company):
        if not hasattr(company, "account"):
            # Lists prefetch the key's product's account (selectors.with_accounts);
            # single answers set it (selectors.company_with_account). Anything
            # else would show another product's values or made-up ones.
            accounts = getattr(company, "product_accounts", None)
            if accounts is None:
                raise AssertionError("CompanySerializer needs company.account (selectors.company_with_account)")
            company.account = accounts[0] if accounts else Account(company=company)
        return super().to_representation(company)


class CompanyWithLinkSerializer(CompanySerializer):
    """A company as seen through one of its product links."""

    externalOrgId = serializers.CharField(source="link.external_org_id", read_only=True)
    externalUserId = serializers.SerializerMethodField()
    label = serializers.SerializerMethodField()

    linkType = serializers.ChoiceField(choices=LinkType.values, source="link.link_type", read_only=True)
    confidence = serializers.IntegerField(
        source="link.confidence", read_only=True, allow_null=True, help_text="Smart links: 0–100."
    )

    def get_externalUserId(self, company) -> str | None:
        return company.link.external_user_id or None

    def get_label(self, company) -> str | None:
        return company.link.label or None


class ContactSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    companyId = serializers.UUIDField(source="company_id", read_only=True)
    email = serializers.EmailField(read_only=True)
    name = serializers.CharField(read_only=True)
    role = serializers.CharField(read_only=True)
    isPrimary = serializers.BooleanField(source="is_primary", read_only=True)
    avatarUrl = serializers.SerializerMethodField()
    metadata = serializers.JSONField(read_only=True)
    createdAt = UTCDateTimeField(source="created_at", read_only=True)
    updatedAt = UTCDateTimeField(source="updated_at", read_only=True)

    def get_avatarUrl(self, contact) -> str | None:
        return contact.avatar_url or None


class ContactUpsertResultSerializer(ContactSerializer):
    isNew = serializers.BooleanField(source="is_new", read_only=True)


class BulkContactResultSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    email = serializers.EmailField(read_only=True)
    isNew = serializers.BooleanField(read_only=True)


class ContactsBulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField(read_only=True)
    updated = serializers.IntegerField(read_only=True)
    contacts = BulkContactResultSerializer(many=True, read_only=True)


class ProductLinkSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    companyId = serializers.UUIDField(source="company_id", read_only=True)
    externalOrgId = serializers.CharField(source="external_org_id", read_only=True)
    externalUserId = serializers.SerializerMethodField()
    label = serializers.SerializerMethodField()
    metadata = serializers.JSONField(read_only=True)
    linkType = serializers.ChoiceField(
        choices=LinkType.values,
        source="link_type",
        read_only=True,
        help_text="created (POST /companies, onboarding), smart, manual (POST /links, staff), merged.",
    )
    confidence = serializers.IntegerField(read_only=True, allow_null=True, help_text="Smart links: 0–100.")
    createdAt = UTCDateTimeField(source="created_at", read_only=True)
    updatedAt = UTCDateTimeField(source="updated_at", read_only=True)

    def get_externalUserId(self, link) -> str | None:
        return link.external_user_id or None

    def get_label(self, link) -> str | None:
        return link.label or None


class SmartLinkSuggestionSerializer(serializers.Serializer):
    companyId = serializers.UUIDField(source="company.id", read_only=True)
    name = serializers.CharField(source="company.name", read_only=True)
    domain = serializers.SerializerMethodField()
    confidence = serializers.IntegerField(read_only=True, help_text="0–100")
    matchedBy = serializers.CharField(source="matched_by", read_only=True)

    def get_domain(self, candidate) -> str | None:
        return candidate.company.domain or None


class SmartLinkResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["already_linked", "linked", "suggestions", "no_match"], read_only=True
    )
    companyId = serializers.SerializerMethodField()
    customerName = serializers.SerializerMethodField()
    confidence = serializers.IntegerField(read_only=True, allow_null=True, help_text="0–100")
    matchedBy = serializers.CharField(source="matched_by", read_only=True, allow_null=True)
    suggestions = SmartLinkSuggestionSerializer(many=True, read_only=True)

    def get_companyId(self, result) -> str | None:
        return str(result.company.pk) if result.company else None

    def get_customerName(self, result) -> str | None:
        return result.company.name if result.company else None


class LinksResetResultSerializer(serializers.Serializer):
    linksDeleted = serializers.IntegerField(source="links_deleted", read_only=True)
    contactsDeleted = serializers.IntegerField(source="contacts_deleted", read_only=True)
    mrrReset = serializers.IntegerField(
        source="mrr_reset", read_only=True, help_text="Number of this product's accounts whose MRR was set to 0."
    )


# --- Input ---------------------------------------------------------------------------


class BillingAddressInputSerializer(StrictSerializer):
    line1 = _optional_text(profile.BILLING_ADDRESS_LIMITS["line1"])
    line2 = _optional_text(profile.BILLING_ADDRESS_LIMITS["line2"])
    city = _optional_text(profile.BILLING_ADDRESS_LIMITS["city"])
    postalCode = _optional_text(profile.BILLING_ADDRESS_LIMITS["postalCode"])
    state = _optional_text(profile.BILLING_ADDRESS_LIMITS["state"])
    country = serializers.ChoiceField(
        choices=profile.COUNTRY_CODES, required=False, allow_null=True, help_text="ISO 3166-1 alpha-2, upper case."
    )


def _code(choices, help_text: str) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=choices, required=False, allow_null=True, help_text=f"{help_text} null clears it."
    )


class ProfileInputSerializer(StrictSerializer):
    """Profile (the company's, shared within the pool) and billing (this
    product's account) fields of create and update, each optional. The
    choices are companies.profile's; the services check them again."""

    country = _code(profile.COUNTRY_CODES, "ISO 3166-1 alpha-2, upper case (DE).")
    industry = _optional_text(profile.MAX_INDUSTRY, help_text="Free text. null or \"\" clears it.")
    size = _code(profile.CompanySize.values, "Company size.")
    timezone = _code(profile.TIME_ZONES, "IANA time zone (Europe/Berlin).")
    locale = serializers.RegexField(
        profile.LOCALE_PATTERN,
        max_length=profile.MAX_LOCALE,
        required=False,
        allow_null=True,
        help_text="language[-REGION]: en, de-AT, es-419. null clears it.",
    )
    currency = serializers.ChoiceField(
        choices=profile.CURRENCY_CODES, required=False, help_text="ISO 4217, lower case (eur): this account's currency."
    )
    billingEmail = StrictEmailField(max_length=254, required=False, allow_null=True, allow_blank=True)
    billingAddress = BillingAddressInputSerializer(
        required=False, allow_null=True, help_text="Replaces the whole address; null clears it."
    )
    taxId = _optional_text(profile.MAX_TAX_ID)

    @staticmethod
    def profile_of(data: dict) -> dict:
        """The profile changes of validated input, by model attribute."""
        by_api_name = {api_name: attribute for attribute, api_name in PROFILE_FIELDS.items()}
        return {by_api_name[name]: value for name, value in data.items() if name in by_api_name}

    @classmethod
    def split_profile(cls, data: dict) -> tuple[dict, dict]:
        """(the service's other keyword arguments, the profile changes) of validated input."""
        api_names = set(PROFILE_FIELDS.values())
        return {key: value for key, value in data.items() if key not in api_names}, cls.profile_of(data)


class CompanyCreateInputSerializer(ProfileInputSerializer):
    name = StrictCharField(max_length=200)
    domain = DomainField()
    externalOrgId = StrictCharField(max_length=200, source="external_org_id")
    externalUserId = _optional_text(200, source="external_user_id")
    contactEmail = StrictEmailField(
        max_length=254, required=False, allow_null=True, allow_blank=True, source="contact_email"
    )
    contactName = _optional_text(200, source="contact_name")
    createdAt = UTCDateTimeField(required=False, source="created_at", example="2024-01-15T10:30:00Z")
    metadata = JSONObjectField(required=False)


class CompanyUpdateInputSerializer(ProfileInputSerializer):
    name = StrictCharField(max_length=200, required=False)
    domain = DomainField(help_text="null or \"\" removes the domain.")
    createdAt = UTCDateTimeField(required=False, source="created_at", example="2024-01-15T10:30:00Z")
    metadata = JSONObjectField(
        required=False,
        help_text="This product's metadata, merged key by key; a key set to null is removed.",
    )


class SmartLinkHintsSerializer(StrictSerializer):
    companyName = _optional_text(200, source="company_name")
    domain = DomainField()
    emails = serializers.ListField(
        child=StrictEmailField(max_length=254), required=False, allow_empty=True, max_length=MAX_HINT_EMAILS
    )


class SmartLinkInputSerializer(StrictSerializer):
    externalOrgId = StrictCharField(max_length=200, source="external_org_id")
    hints = SmartLinkHintsSerializer(required=False)
    minConfidence = StrictFloatField(
        required=False, min_value=0, max_value=1, default=DEFAULT_MIN_CONFIDENCE, source="min_confidence"
    )
    externalUserId = _optional_text(200, source="external_user_id")


class ContactFieldsSerializer(StrictSerializer):
    email = StrictEmailField(max_length=254)
    name = _optional_text(200)
    role = _optional_text(100)
    isPrimary = StrictBooleanField(required=False, allow_null=True, source="is_primary")
    avatarUrl = StrictURLField(max_length=500, required=False, allow_null=True, allow_blank=True, source="avatar_url")
    metadata = JSONObjectField(required=False, allow_null=True)


class ContactUpsertInputSerializer(ContactFieldsSerializer):
    companyId = StrictUUIDField(source="company_id")


class ContactsBulkUpsertInputSerializer(StrictSerializer):
    companyId = StrictUUIDField(source="company_id")
    contacts = UniqueItemsListField(child=ContactFieldsSerializer(), max_length=MAX_BULK_CONTACTS, allow_empty=True)


class LinkCreateInputSerializer(StrictSerializer):
    companyId = StrictUUIDField(source="company_id")
    externalOrgId = StrictCharField(max_length=200, source="external_org_id")
    label = _optional_text(200)
    externalUserId = _optional_text(200, source="external_user_id")
    metadata = JSONObjectField(required=False, help_text="Stored with a new link; a replay keeps the link as it is.")


class LinksResetInputSerializer(StrictSerializer):
    deleteContacts = StrictBooleanField(required=False, default=False, source="delete_contacts")
    resetMrr = StrictBooleanField(required=False, default=False, source="reset_mrr")


class ContactListQuerySerializer(PageQuerySerializer):
    primaryOnly = serializers.ChoiceField(
        choices=["true", "false", "1", "0"], required=False, help_text="true: only the primary contact"
    )


class CompanyListQuerySerializer(PageQuerySerializer):
    q = StrictCharField(
        required=False, allow_blank=True, max_length=200,
        help_text="Part of the name, domain, shortId or one of this product's external org ids.",
    )


class ByProductLinkQuerySerializer(StrictSerializer):
    externalOrgId = StrictCharField(max_length=200, source="external_org_id")
