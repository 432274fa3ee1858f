"""Insights rows: lifecycle status history (SPEC §3), revenue snapshots,
health scores and segments (SPEC §8)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from companies.models import Account, Company, CompanyStatus, Product


class AccountStatusChange(models.Model):
    """One change of an account's lifecycle `status`, with its cause: the
    rule that made it (`insights.rules.lifecycle_status`) or the staff member
    (suspend/reactivate). Append-only; shown on the company's timeline."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="status_changes")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+", db_index=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+", db_index=False)
    from_status = models.CharField(max_length=16, choices=CompanyStatus.choices)
    to_status = models.CharField(max_length=16, choices=CompanyStatus.choices)
    cause = models.CharField(max_length=64, help_text="The rule (e.g. subscription_ended) or staff_suspend/…")
    actor_label = models.CharField(max_length=200, blank=True, default="", help_text="Who: a job or a staff user.")
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "status change"
        indexes = [
            models.Index(fields=["account", "-created_at"], name="status_change_account_idx"),
            models.Index(fields=["company", "-created_at"], name="status_change_company_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status} ({self.cause})"


class RevenueSnapshot(models.Model):
    """An account's MRR on one UTC day (SPEC §8): written by the
    `snapshot_revenue` job (today's row is updated until the day ends; past
    days are never rewritten), so revenue history never changes when
    today's data does."""

    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False)
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+", db_index=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+", db_index=False)
    day = models.DateField()
    mrr = models.BigIntegerField(default=0, help_text="Minor units of `currency`.")
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["product", "day", "account"]
        constraints = [models.UniqueConstraint(fields=["account", "day"], name="revenue_snapshot_unique_day")]
        indexes = [models.Index(fields=["product", "day"], name="revenue_snapshot_product_idx")]

    def __str__(self) -> str:
        return f"{self.account_id} · {self.day}: {self.mrr}"


class RiskLevel(models.TextChoices):
    """An account's health risk (SPEC §8); thresholds are settings (`HEALTH_RISK_THRESHOLDS`)."""

    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


HIGH_RISK_LEVELS = (RiskLevel.HIGH, RiskLevel.CRITICAL)


class AccountHealth(models.Model):
    """An account's current health score (SPEC §8): one row per account,
    written by `insights.services.health.health_compute` (the nightly
    `compute_health` job and on demand). `components` is the explained
    breakdown: `[{name, value, weight, detail}]` (value 0–100)."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, primary_key=True, related_name="health")
    score = models.PositiveSmallIntegerField(help_text="0–100, higher is healthier.")
    risk_level = models.CharField(max_length=8, choices=RiskLevel.choices)
    components = models.JSONField(default=list)
    computed_at = models.DateTimeField()

    class Meta:
        verbose_name = "account health"
        verbose_name_plural = "account health"
        indexes = [models.Index(fields=["risk_level"], name="account_health_risk_idx")]
        constraints = [models.CheckConstraint(condition=Q(score__gte=0, score__lte=100), name="account_health_score_range")]

    def __str__(self) -> str:
        return f"{self.score} ({self.risk_level})"


class HealthSnapshot(models.Model):
    """An account's health score on one UTC day (history; the day's last
    computation wins, past days are never rewritten)."""

    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False)
    date = models.DateField()
    score = models.PositiveSmallIntegerField()
    risk_level = models.CharField(max_length=8, choices=RiskLevel.choices)

    class Meta:
        ordering = ["account", "date"]
        constraints = [models.UniqueConstraint(fields=["account", "date"], name="health_snapshot_unique_day")]

    def __str__(self) -> str:
        return f"{self.account_id} · {self.date}: {self.score}"


class SegmentType(models.TextChoices):
    BEHAVIORAL = "behavioral", "Behavioral"
    DEMOGRAPHIC = "demographic", "Demographic"
    VALUE = "value", "Value"
    ENGAGEMENT = "engagement", "Engagement"
    LIFECYCLE = "lifecycle", "Lifecycle"
    CUSTOM = "custom", "Custom"


class Segment(models.Model):
    """A product's group of customers defined by rules (SPEC §8): `criteria`
    is a document of `insights.criteria` (validated there, the one home of
    its rules). With a `parent`, members must also match the parent (and its
    ancestors). Membership and `stats` are kept by the `sync_segments` job."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="segments")
    slug = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=16, choices=SegmentType.choices, default=SegmentType.CUSTOM)
    description = models.TextField(blank=True, default="")
    criteria = models.JSONField(
        default=dict,
        help_text='{"all": [...]} or {"any": [...]} of groups or conditions {"field", "op", "value"} (docs/insights.md).',
    )
    # PROTECT: deleting a parent would silently widen its children.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children",
        help_text="Members must also be members of this segment (same product).",
    )
    last_synced_at = models.DateTimeField(null=True, blank=True, editable=False)
    # customer_count, percent_of_total, total_mrr, avg_mrr, churn_rate, currency: at the last sync.
    stats = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product__code", "slug"]
        permissions = [("sync_segment", "Can sync segments now")]
        constraints = [models.UniqueConstraint(fields=["product", "slug"], name="segment_slug_unique_per_product")]

    def __str__(self) -> str:
        return self.name


class SegmentMembership(models.Model):
    """A company (its account with the segment's product) in a segment since
    `entered_at`. Written only by `insights.services.segment_sync`, which
    emits `segment.entered` / `segment.left` with each insert / delete."""

    id = models.BigAutoField(primary_key=True)
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="segment_memberships", db_index=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    entered_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["segment", "company"]
        constraints = [models.UniqueConstraint(fields=["segment", "company"], name="segment_membership_unique")]
        indexes = [models.Index(fields=["company"], name="segment_membership_company_idx")]

    def __str__(self) -> str:
        return f"{self.company_id} ∈ {self.segment_id}"
