"""Mirror of Stripe invoices (SPEC §8): written by the invoice webhooks and
`manage.py sync_invoices` only, from the invoice as Stripe has it now."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from companies.models import Company, Product


class Invoice(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="invoices")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        "billing.Subscription", null=True, blank=True, on_delete=models.SET_NULL, related_name="invoices"
    )
    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    stripe_customer_id = models.CharField(max_length=255, db_index=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, default="")
    number = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=24, help_text="draft, open, paid, void, uncollectible")
    billing_reason = models.CharField(max_length=64, blank=True, default="")
    currency = models.CharField(max_length=3)
    # Minor units, as Stripe sends them.
    subtotal = models.BigIntegerField(default=0)
    tax = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    amount_paid = models.BigIntegerField(default=0)
    amount_due = models.BigIntegerField(default=0)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    hosted_invoice_url = models.URLField(max_length=1000, blank=True, default="")
    invoice_pdf = models.URLField(max_length=1000, blank=True, default="")
    lines = models.JSONField(default=list, help_text="[{description, quantity, unitAmount, amount, priceId, "
                                                     "periodStart, periodEnd, proration}]")
    paid_at = models.DateTimeField(null=True, blank=True)
    stripe_created_at = models.DateTimeField(default=timezone.now, help_text="When Stripe made it.")
    synced_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-stripe_created_at", "-id"]
        permissions = [("send_statement", "Can send usage statements")]
        indexes = [models.Index(fields=["company", "product", "-stripe_created_at"], name="invoice_company_idx")]

    def __str__(self) -> str:
        return f"{self.number or self.stripe_invoice_id} ({self.status})"
