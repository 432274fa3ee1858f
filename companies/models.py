"""Products, their API keys, and the customers (companies, contacts, links).

The rules of SPEC §3 hold in the database, not only in code: one company per
external org id in a product, one primary contact per company, unique
shortIds, lower-case unique contact emails, normalised domains."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from .names import normalize_company_name
from .profile import (
    MAX_INDUSTRY,
    MAX_LOCALE,
    MAX_TAX_ID,
    CompanySize,
    validate_billing_address,
    validate_country,
    validate_currency,
    validate_locale,
    validate_timezone,
)


class Product(models.Model):
    """One of the SaaS company's own apps. Every API key, feature, tier and
    product link belongs to exactly one product (the tenant boundary)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    customer_pool = models.SlugField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text=(
            "Products of one pool share their customers (smart link and onboard match only companies "
            "of the pool). Empty: the product's code, i.e. a pool of its own."
        ),
    )
    currency = models.CharField(
        max_length=3, default="usd", help_text="ISO 4217, lower case: the currency of MRR and revenue metrics."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["code"]
        constraints = [models.CheckConstraint(condition=~Q(customer_pool=""), name="product_customer_pool_set")]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def save(self, *args, **kwargs):
        # The default pool is the product itself (SPEC §2).
        if not self.customer_pool:
            self.customer_pool = self.code
        super().save(*args, **kwargs)


class ApiKey(models.Model):
    """A product's secret key. Only its SHA-256 is stored: the key itself has
    190+ bits of randomness, so a slow password hash adds nothing but latency
    on every request, while the plain digest still makes a leaked table useless."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, help_text="The first characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class CompanyStatus(models.TextChoices):
    """An account's lifecycle status (SPEC §3)."""

    PROSPECT = "prospect", "Prospect"
    ACTIVE = "active", "Active"
    AT_RISK = "at_risk", "At risk"
    CHURNED = "churned", "Churned"
    SUSPENDED = "suspended", "Suspended"
    REACTIVATED = "reactivated", "Reactivated"


class Company(models.Model):
    """A customer, shared by the products of one customer pool (SPEC §2):
    name, domain, shortId, contacts. What differs per product lives on its
    Account with that product."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer_pool = models.SlugField(
        max_length=64,
        blank=True,
        help_text="The customer pool the company lives in: the pool of the product that created it.",
    )
    short_id = models.SlugField(max_length=80)
    name = models.CharField(max_length=200)
    # normalize_company_name(name), kept by save(): the smart-link prefilter
    # compares hints with it, accents and legal suffixes removed on both sides.
    match_name = models.CharField(max_length=400, blank=True, default="", editable=False)
    domain = models.CharField(max_length=253, blank=True, default="", db_index=True)
    # Settable so that history can be backfilled from another system.
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The profile (SPEC §3), shared within the pool; "" = not given.
    country = models.CharField(
        max_length=2, blank=True, default="", validators=[validate_country], help_text="ISO 3166-1 alpha-2, e.g. DE."
    )
    industry = models.CharField(max_length=MAX_INDUSTRY, blank=True, default="")
    size = models.CharField(max_length=16, blank=True, default="", choices=CompanySize.choices)
    timezone = models.CharField(
        max_length=64, blank=True, default="", validators=[validate_timezone], help_text="IANA, e.g. Europe/Berlin."
    )
    locale = models.CharField(
        max_length=MAX_LOCALE, blank=True, default="", validators=[validate_locale], help_text="e.g. en, de-AT."
    )
    # A merged duplicate stays as a tombstone (SPEC §3): reads by its id answer
    # the kept company, writes are 409. Set only by desk's merge
    # (companies.services.company_tombstone); never cleared.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_duplicates", editable=False
    )
    merged_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "companies"
        constraints = [
            models.UniqueConstraint(fields=["customer_pool", "short_id"], name="company_short_id_unique_in_pool"),
            # Normalised: lower case, no scheme, no www., no path (see companies.domains).
            models.CheckConstraint(
                condition=Q(domain="") | (Q(domain__regex=r"^[a-z0-9.-]+$") & ~Q(domain__startswith="www.")),
                name="company_domain_normalised",
            ),
            models.CheckConstraint(condition=~Q(merged_into=models.F("id")), name="company_not_merged_into_itself"),
        ]
        indexes = [
            models.Index(Lower("name"), name="company_name_lower_idx"),
            models.Index(fields=["customer_pool", "domain"], name="company_pool_domain_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (merged)" if self.merged_into_id else self.name

    @property
    def is_tombstone(self) -> bool:
        return self.merged_into_id is not None

    def save(self, *args, **kwargs):
        self.match_name = normalize_company_name(self.name)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "name" in update_fields:
            kwargs["update_fields"] = {*update_fields, "match_name"}
        super().save(*args, **kwargs)


class Account(models.Model):
    """A company's account with one product (SPEC §2, §3): everything that
    is per product rather than shared within the pool. Made when the company
    is first linked to the product; API answers show it flattened into the
    company under the same names."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="accounts")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="accounts")
    # Kept by the system (insights.services.lifecycle; suspension by staff).
    status = models.CharField(max_length=16, choices=CompanyStatus.choices, default=CompanyStatus.PROSPECT)
    mrr = models.BigIntegerField(default=0, help_text="Monthly recurring revenue in minor units of `currency`.")
    currency = models.CharField(
        max_length=3, default="usd", validators=[validate_currency], help_text="ISO 4217, lower case."
    )
    metadata = models.JSONField(default=dict, blank=True)
    # Suspension by staff (SPEC §3): the status to go back to on reactivate.
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspension_reason = models.TextField(blank=True, default="")
    status_before_suspension = models.CharField(max_length=16, blank=True, default="")
    # Billing details (SPEC §3), per product; "" / {} = not given.
    billing_email = models.EmailField(max_length=254, blank=True, default="")
    billing_address = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_billing_address],
        help_text='{"line1", "line2", "city", "postalCode", "state", "country" (ISO 3166 alpha-2)}, each optional.',
    )
    tax_id = models.CharField(max_length=MAX_TAX_ID, blank=True, default="")
    # Derived, never typed in: billing reports paid invoices through
    # companies.services.account_purchases_set; metering touches
    # last_activity_at (at most once a minute per account and process).
    first_purchase_at = models.DateTimeField(null=True, blank=True, editable=False)
    lifetime_value = models.BigIntegerField(
        default=0, editable=False, help_text="Sum of paid invoices, minor units of `currency`."
    )
    last_activity_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Pushed by insights' health job (companies.services.accounts_health_set), for the
    # company answer and filters (SPEC §3); the components and history stay in insights.
    health_score = models.PositiveSmallIntegerField(null=True, blank=True, editable=False, help_text="0–100.")
    risk_level = models.CharField(max_length=16, blank=True, default="", editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product__code"]
        constraints = [
            models.UniqueConstraint(fields=["company", "product"], name="account_unique_company_product"),
            models.CheckConstraint(condition=Q(mrr__gte=0), name="account_mrr_non_negative"),
        ]
        indexes = [models.Index(fields=["product", "status"], name="account_product_status_idx")]
        # Billing admin only (SPEC §9); desk's services do the work.
        permissions = [("suspend_account", "Can suspend and reactivate accounts")]

    def __str__(self) -> str:
        return f"{self.company} · {self.product.code}"


class Contact(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="contacts")
    email = models.EmailField(max_length=254)
    name = models.CharField(max_length=200, blank=True, default="")
    role = models.CharField(max_length=100, blank=True, default="")
    is_primary = models.BooleanField(default=False)
    avatar_url = models.URLField(max_length=500, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_primary", "email"]
        constraints = [
            models.UniqueConstraint(fields=["company", "email"], name="contact_unique_email_per_company"),
            models.UniqueConstraint(
                fields=["company"], condition=Q(is_primary=True), name="contact_one_primary_per_company"
            ),
            models.CheckConstraint(condition=Q(email=Lower("email")), name="contact_email_lower_case"),
        ]
        indexes = [models.Index(fields=["email"], name="contact_email_idx")]

    def __str__(self) -> str:
        return self.email


class LinkType(models.TextChoices):
    """How a link was made (SPEC §3)."""

    CREATED = "created", "Created (with the company: POST /companies, onboarding)"
    SMART = "smart", "Smart link"
    MANUAL = "manual", "Manual (POST /links, staff)"
    MERGED = "merged", "Moved by a merge"


class ProductLink(models.Model):
    """Maps an organisation id of one product's own system to a company. A
    company may have several links in one product (one per store, told apart
    by `label`), but an external org id names one company per product."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="links")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="links")
    external_org_id = models.CharField(max_length=200)
    external_user_id = models.CharField(max_length=200, blank=True, default="")
    label = models.CharField(max_length=200, blank=True, default="")
    link_type = models.CharField(max_length=16, choices=LinkType.choices, default=LinkType.MANUAL)
    confidence = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Smart links: the match score, 0–100."
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["product", "external_org_id"], name="link_unique_external_org_per_product"
            ),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True) | Q(confidence__lte=100), name="link_confidence_0_100"
            ),
        ]
        indexes = [models.Index(fields=["external_org_id"], name="link_external_org_idx")]

    def __str__(self) -> str:
        return f"{self.product.code}:{self.external_org_id}"


class ServiceCredential(models.Model):
    """A product backend service that signs its requests with HMAC-SHA256
    (SPEC §7) instead of sending an API key. HMAC needs the shared secret on
    both sides, so unlike an API key's hash the secret itself is stored; it
    is shown once when created and never displayed again."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="service_credentials")
    service_name = models.SlugField(max_length=100, help_text="Sent as X-Service-Name.")
    prefix = models.CharField(max_length=16, editable=False)
    secret = models.CharField(max_length=128, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "service credential"
        indexes = [models.Index(fields=["service_name"], condition=Q(revoked_at__isnull=True), name="svc_cred_active_idx")]

    def __str__(self) -> str:
        return f"{self.service_name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ServiceNonce(models.Model):
    """Nonces of signed requests, kept here only while the cache (Redis) is
    unreachable; the cache holds them otherwise. Older than the allowed clock
    skew they can be pruned: such a request is refused for its timestamp."""

    id = models.BigAutoField(primary_key=True)
    credential = models.ForeignKey(ServiceCredential, on_delete=models.CASCADE, related_name="+")
    nonce = models.CharField(max_length=128)
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["credential", "nonce"], name="service_nonce_once")]
        indexes = [models.Index(fields=["seen_at"], name="service_nonce_seen_idx")]


class RateLimitCounter(models.Model):
    """Rate-limit counters, kept here only while the cache (Redis) is
    unreachable (SPEC §2 "Degrade, don't fail"); Redis holds them otherwise.
    One row per limited subject and window; expired rows are pruned by the
    limiter itself."""

    key = models.CharField(max_length=200, primary_key=True)
    count = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "rate-limit counter"
