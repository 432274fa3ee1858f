"""Stripe webhook events, stored raw before they are processed (dj-stripe's way)."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class WebhookEventStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored (type not handled)"
    FAILED = "failed", "Failed"


class StripeWebhookEvent(models.Model):
    """One Stripe event, stored once by its id. A repeat delivery of the same id
    is a no-op; failures keep their error and can be reprocessed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stripe_event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    livemode = models.BooleanField(default=False)
    api_version = models.CharField(max_length=64, blank=True, default="")
    stripe_created_at = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField()
    status = models.CharField(
        max_length=16, choices=WebhookEventStatus.choices, default=WebhookEventStatus.PENDING, db_index=True
    )
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    processing_error = models.TextField(blank=True, default="")
    result = models.JSONField(default=dict, blank=True, help_text="What processing did, for staff.")
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-received_at"]
        verbose_name = "Stripe webhook event"
        permissions = [("reprocess_webhook", "Can reprocess Stripe webhook events")]

    def __str__(self) -> str:
        return f"{self.type} ({self.stripe_event_id})"
