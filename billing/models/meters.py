"""Reconciliation of delivered usage with Stripe's meter event summaries."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from companies.models import Company


class MeterDrift(models.Model):
    """A window in which what SaaSDesk delivered for one (customer, meter event
    name) differs from what Stripe's meter reports. One row per window, updated
    by each reconciliation run; `resolved_at` is set once the sums agree again."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    stripe_customer_id = models.CharField(max_length=255)
    meter_event_name = models.CharField(max_length=100)
    stripe_meter_id = models.CharField(max_length=255, blank=True, default="")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    delivered_value = models.BigIntegerField(help_text="Sum of billable deltas SaaSDesk delivered.")
    stripe_value = models.BigIntegerField(null=True, blank=True, help_text="Sum Stripe reports; empty = no meter.")
    difference = models.BigIntegerField(help_text="delivered − Stripe.")
    note = models.CharField(max_length=500, blank=True, default="")
    detected_at = models.DateTimeField(default=timezone.now)
    checked_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-detected_at"]
        verbose_name = "meter drift"
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_customer_id", "meter_event_name", "window_start", "window_end"],
                name="meter_drift_unique_window",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stripe_customer_id} · {self.meter_event_name} · {self.difference:+d}"
