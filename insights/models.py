"""Insights rows: the lifecycle status history of accounts (SPEC §3)."""

from __future__ import annotations

import uuid

from django.db import models
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
