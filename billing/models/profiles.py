"""Company ↔ Stripe customer."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from companies.models import Company


class BillingProfile(models.Model):
    """One Stripe customer per company and one company per Stripe customer:
    usage of a company is billed to exactly this customer."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.OneToOneField(Company, on_delete=models.CASCADE, related_name="billing_profile")
    stripe_customer_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.company} · {self.stripe_customer_id}"
