"""Account (company × product) ↔ Stripe customer."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from companies.models import Company, Product


class BillingProfile(models.Model):
    """One Stripe customer per account (company × product, SPEC §2) and one
    account per Stripe customer: a company's usage of a product is billed to
    exactly this customer, and no other product ever sees it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="billing_profiles")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    stripe_customer_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["company", "product"], name="billing_profile_one_per_account"),
        ]

    def __str__(self) -> str:
        return f"{self.company} · {self.product_id and self.product.code} · {self.stripe_customer_id}"
