"""Credit purchases (SPEC §7): one row per PaymentIntent that buys credits."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from companies.models import Company, Product


class PurchaseStatus(models.TextChoices):
    PENDING = "pending", "Waiting for payment"
    SUCCEEDED = "succeeded", "Succeeded (credits landed)"
    FAILED = "failed", "Payment failed"
    CANCELED = "canceled", "Canceled"
    TOMBSTONED = "tombstoned", "Refunded before it succeeded (never credited)"


class PurchaseOrigin(models.TextChoices):
    API = "api", "API"
    AUTO_REFILL = "auto_refill", "Auto-refill"
    ADMIN = "admin", "Admin"


class CreditPurchase(models.Model):
    """Credits bought for money through one Stripe PaymentIntent. Written
    only by billing's purchase services, under this row's lock: the webhook
    and the synchronous confirmation may race, the credits land once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="credit_purchases")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="credit_purchases")
    credits = models.BigIntegerField()
    amount = models.BigIntegerField(help_text="Price in minor units of `currency`.")
    currency = models.CharField(max_length=3)
    stripe_payment_intent_id = models.CharField(max_length=255, unique=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=16, choices=PurchaseStatus.choices, default=PurchaseStatus.PENDING)
    origin = models.CharField(max_length=16, choices=PurchaseOrigin.choices, default=PurchaseOrigin.API)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    amount_refunded = models.BigIntegerField(default=0, help_text="Minor units refunded at Stripe (cumulative).")
    credits_reversed = models.BigIntegerField(default=0, help_text="Credits taken back for refunds.")
    disputed = models.BooleanField(default=False)
    failure_code = models.CharField(max_length=100, blank=True, default="")
    failure_message = models.CharField(max_length=500, blank=True, default="")
    ledger_entry_id = models.UUIDField(null=True, blank=True, help_text="The `purchase` ledger entry.")
    actor = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "credit purchase"
        permissions = [("refund_creditpurchase", "Can refund credit purchases")]
        constraints = [
            models.UniqueConstraint(
                fields=["product", "idempotency_key"], condition=Q(idempotency_key__isnull=False),
                name="purchase_idempotency_key_per_product",
            ),
            models.CheckConstraint(condition=Q(credits__gt=0) & Q(amount__gt=0), name="purchase_positive"),
        ]
        indexes = [models.Index(fields=["company", "-created_at"], name="purchase_company_idx")]

    def __str__(self) -> str:
        return f"{self.credits} credits for {self.amount / 100:.2f} {self.currency.upper()} ({self.status})"
