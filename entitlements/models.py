"""Features, tiers and who may use what (SPEC §4)."""

from __future__ import annotations

import re
import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from companies.models import Company, Product

from .rules import access_resolve


class FeatureKind(models.TextChoices):
    BOOLEAN = "boolean", "On/off"
    METERED = "metered", "Metered (counted usage)"
    CONFIG = "config", "Configuration"


class ResetPeriod(models.TextChoices):
    NEVER = "never", "Never"
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    YEARLY = "yearly", "Yearly"
    BILLING_PERIOD = "billing_period", "Billing period"


DEFAULT_ALERT_THRESHOLDS = (80, 100)
MAX_ALERT_THRESHOLDS = 10


def default_alert_thresholds() -> list[int]:
    return list(DEFAULT_ALERT_THRESHOLDS)


def alert_thresholds_problem(value) -> str | None:
    """The one rule for `alertThresholds` (catalog, admin): a list of at most
    10 distinct whole percentages of the limit, 1–100. None when valid."""
    if not isinstance(value, list) or not all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return "must be a list of whole percentages (1–100)"
    if any(not 1 <= item <= 100 for item in value):
        return "each threshold must be between 1 and 100 (percent of the limit)"
    if len(set(value)) != len(value) or len(value) > MAX_ALERT_THRESHOLDS:
        return f"must hold at most {MAX_ALERT_THRESHOLDS} distinct thresholds"
    return None


def validate_alert_thresholds(value) -> None:
    problem = alert_thresholds_problem(value)
    if problem:
        raise ValidationError(f"Alert thresholds {problem}.")


MAX_DIMENSIONS = 3
DIMENSION_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def dimensions_problem(value) -> str | None:
    """The one rule for a metered feature's `dimensions` (catalog, admin): at
    most 3 distinct metadata keys (letters, digits, `_`, `.`, `-`; ≤ 64
    characters) whose values usage rollups keep totals for (SPEC §5). None
    when valid."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return "must be a list of metadata keys"
    if len(value) > MAX_DIMENSIONS:
        return f"at most {MAX_DIMENSIONS} dimensions per feature (got {len(value)})"
    if len(set(value)) != len(value):
        return "must not repeat a key"
    bad = [item for item in value if not DIMENSION_KEY_PATTERN.match(item)]
    if bad:
        return f"{bad[0]!r} is not a metadata key (letters, digits, '_', '.', '-'; at most 64 characters)"
    return None


def validate_dimensions(value) -> None:
    problem = dimensions_problem(value)
    if problem:
        raise ValidationError(f"Dimensions: {problem}.")


class Feature(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="features")
    code = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=16, choices=FeatureKind.choices, default=FeatureKind.BOOLEAN)
    unit = models.CharField(max_length=64, blank=True, default="")
    reset_period = models.CharField(max_length=16, choices=ResetPeriod.choices, blank=True, default="")
    default_config = models.JSONField(default=dict, blank=True)
    stripe_meter_event_name = models.CharField(max_length=100, blank=True, default="")
    credit_cost = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Credits per unit beyond the included quantity: the feature is paid from the credit wallet.",
    )
    # Percentages of the limit whose crossing notifies the product (SPEC §4, §11).
    alert_thresholds = models.JSONField(
        default=default_alert_thresholds,
        blank=True,
        validators=[validate_alert_thresholds],
        help_text="Percent of the usage limit that notify the product, e.g. [80, 100]. Empty: only the limit itself.",
    )
    # Metadata keys whose values usage rollups keep totals for (SPEC §5, docs/metering.md).
    dimensions = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_dimensions],
        help_text="Up to 3 metadata keys (e.g. model, platform) whose values usage statistics break down by.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product", "code"]
        constraints = [
            models.UniqueConstraint(fields=["product", "code"], name="feature_unique_code_per_product"),
            # Only metered features count usage, reset, or report to Stripe meters.
            models.CheckConstraint(
                condition=Q(kind="metered") | (Q(reset_period="") & Q(stripe_meter_event_name="") & Q(unit="")),
                name="feature_metering_fields_only_when_metered",
            ),
            # Credit-priced features are metered, cost at least 1 credit per
            # unit, and are paid from the wallet, never also through a Stripe meter.
            models.CheckConstraint(
                condition=Q(credit_cost__isnull=True)
                | (Q(kind="metered") & Q(credit_cost__gte=1) & Q(stripe_meter_event_name="")),
                name="feature_credit_cost_metered_not_stripe",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def has_quantity(self) -> bool:
        return self.kind == FeatureKind.METERED


class Tier(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="tiers")
    code = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=True)
    is_default = models.BooleanField(
        default=False, help_text="Applied at onboarding when nothing else is asked, and when a subscription ends."
    )
    display_order = models.IntegerField(default=0)
    base_fee_stripe_price_id = models.CharField(max_length=100, blank=True, default="")
    base_fee_unit_amount = models.BigIntegerField(null=True, blank=True, help_text="Minor units (cents).")
    base_fee_currency = models.CharField(max_length=3, blank=True, default="")
    base_fee_interval = models.CharField(
        max_length=8, blank=True, default="", choices=[("day", "day"), ("week", "week"), ("month", "month"), ("year", "year")]
    )
    credits_per_cycle = models.PositiveIntegerField(
        default=0, help_text="Credits each paid subscription cycle grants (a subscription lot expiring at the cycle end)."
    )
    features = models.ManyToManyField(Feature, through="TierFeature", related_name="tiers")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product", "display_order", "code"]
        # Applying a tier to a company is a tier change: Billing admin only (SPEC §9).
        permissions = [("apply_tier", "Can apply a tier to a company")]
        constraints = [
            models.UniqueConstraint(fields=["product", "code"], name="tier_unique_code_per_product"),
            models.UniqueConstraint(fields=["product"], condition=Q(is_default=True), name="tier_one_default_per_product"),
            models.CheckConstraint(
                condition=Q(base_fee_unit_amount__isnull=True) | Q(base_fee_unit_amount__gte=0),
                name="tier_base_fee_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class TierFeature(models.Model):
    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="tier_features")
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="tier_features")
    is_enabled = models.BooleanField(default=True)
    included_quantity = models.BigIntegerField(default=0)
    quantity_limit = models.BigIntegerField(null=True, blank=True, help_text="Empty = unlimited.")
    config = models.JSONField(default=dict, blank=True)
    stripe_price_id = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["tier", "feature__code"]
        constraints = [
            models.UniqueConstraint(fields=["tier", "feature"], name="tier_feature_unique"),
            models.CheckConstraint(condition=Q(included_quantity__gte=0), name="tier_feature_included_non_negative"),
            models.CheckConstraint(
                condition=Q(quantity_limit__isnull=True) | Q(quantity_limit__gte=0),
                name="tier_feature_limit_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tier.code}:{self.feature.code}"


class AccessSource(models.TextChoices):
    SUBSCRIPTION = "subscription", "Subscription (tier)"
    MANUAL = "manual", "Manual"
    TRIAL = "trial", "Trial"
    PROMOTION = "promotion", "Promotion"
    API = "api", "API"


OVERRIDE_SOURCES = [value for value in AccessSource.values if value != AccessSource.SUBSCRIPTION]


class HistoricalActorMixin(models.Model):
    """Extra columns of the historical FeatureAccess rows: who made the change
    when it was not a staff user (an API key or a system job). For staff
    users `history_user` points at the user too."""

    actor = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        abstract = True


class FeatureAccess(models.Model):
    """One company's access to one feature, in two layers (SPEC §4; the one
    rule that resolves them is `entitlements.rules.access_resolve`):

    - the tier layer: `tier_granted`, `is_enabled`, `quantity_limit`,
      `included_quantity`, `config`, `tier` — written only by applying a tier;
    - at most one override: `source` (manual/trial/promotion/api;
      `subscription` = no override), the fields it sets in `overrides`
      (snake_case keys of `rules.LAYER_FIELDS`), its window
      [`valid_from`, `valid_until`), `set_by`, `set_at`, `reason`.

    Every change leaves a historical row (who, when, old → new, why): write
    through `entitlements.services`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="feature_access")
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="access")
    is_enabled = models.BooleanField(default=True)
    quantity_limit = models.BigIntegerField(null=True, blank=True, help_text="Empty = unlimited.")
    included_quantity = models.BigIntegerField(default=0)
    config = models.JSONField(default=dict, blank=True)
    tier_granted = models.BooleanField(
        default=True, help_text="Whether the tier layer exists (False: the company's tier does not grant the feature)."
    )
    # The override (source other than subscription).
    source = models.CharField(
        max_length=16,
        choices=AccessSource.choices,
        default=AccessSource.SUBSCRIPTION,
        help_text="subscription = no override; otherwise the override's source.",
    )
    overrides = models.JSONField(
        default=dict, blank=True, help_text="The fields the override sets (is_enabled, quantity_limit, included_quantity, config)."
    )
    set_by = models.CharField(max_length=255, blank=True, default="", help_text="Who set the override.")
    set_at = models.DateTimeField(null=True, blank=True, help_text="When the override was last set.")
    reason = models.TextField(blank=True, default="", help_text="Why the override was set.")
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(
        bases=[HistoricalActorMixin],
        history_change_reason_field=models.TextField(null=True),
        excluded_fields=["updated_at"],
    )

    class Meta:
        verbose_name = "feature access"
        verbose_name_plural = "feature access"
        constraints = [
            models.UniqueConstraint(fields=["company", "feature"], name="feature_access_unique"),
            models.CheckConstraint(condition=Q(included_quantity__gte=0), name="feature_access_included_non_negative"),
            models.CheckConstraint(
                condition=Q(quantity_limit__isnull=True) | Q(quantity_limit__gte=0),
                name="feature_access_limit_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.company} · {self.feature.code}"

    @property
    def is_expired(self) -> bool:
        return self.valid_until is not None and self.valid_until <= timezone.now()

    @property
    def has_override(self) -> bool:
        return self.source != AccessSource.SUBSCRIPTION

    def as_row(self) -> dict:
        """The columns `entitlements.rules.access_resolve` reads."""
        return {name: getattr(self, name) for name in ACCESS_ROW_FIELDS}

    def effective_at(self, when):
        """The values in force at `when` (`entitlements.rules.access_resolve`)."""
        return access_resolve(self.as_row(), at=when)

    def is_active_at(self, when) -> bool:
        """Enabled and in force at `when` (the rule lives in `entitlements.rules`)."""
        effective = self.effective_at(when)
        return effective.granted and effective.is_enabled


ACCESS_ROW_FIELDS = (
    "feature_id",
    "tier_granted",
    "is_enabled",
    "quantity_limit",
    "included_quantity",
    "config",
    "source",
    "overrides",
    "valid_from",
    "valid_until",
    "tier_id",
)


class AccessWindowNotice(models.Model):
    """That the start or end of an access row's validity window was notified
    (`feature_access.changed`, by the `expire_overrides` job). Unique per row,
    boundary and moment: each boundary is notified once, and moving the
    window makes a new boundary."""

    class Boundary(models.TextChoices):
        START = "start", "Window started"
        END = "end", "Window ended"

    id = models.BigAutoField(primary_key=True)
    access = models.ForeignKey(FeatureAccess, on_delete=models.CASCADE, related_name="window_notices")
    boundary = models.CharField(max_length=8, choices=Boundary.choices)
    at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["access", "boundary", "at"], name="access_window_notice_once"),
        ]

    def __str__(self) -> str:
        return f"{self.access_id} {self.boundary} {self.at:%Y-%m-%d %H:%M}"
