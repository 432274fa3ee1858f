"""Notifications to the products (SPEC §11): their webhook endpoints, the
outbox of events, and one delivery row per (event, endpoint) with every
attempt kept.

Events are written in the same transaction as the change that caused them
(`services.events.event_emit`), so an event exists if and only if its change
committed. Deliveries are work-queue rows claimed with SKIP LOCKED and a lease
(`services.delivery`)."""

from __future__ import annotations

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from companies.models import Product


class EventType(models.TextChoices):
    """The closed set of SPEC §11. The payload of each is in docs/notifications.md."""

    USAGE_THRESHOLD_REACHED = "usage.threshold_reached"
    USAGE_LIMIT_REACHED = "usage.limit_reached"
    FEATURE_ACCESS_CHANGED = "feature_access.changed"
    CREDITS_LOW_BALANCE = "credits.low_balance"
    CREDITS_DEPLETED = "credits.depleted"
    CREDITS_PURCHASE_SUCCEEDED = "credits.purchase_succeeded"
    CREDITS_REFILL_FAILED = "credits.refill_failed"
    SUBSCRIPTION_CHANGED = "subscription.changed"
    INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
    COMPANY_STATUS_CHANGED = "company.status_changed"
    COMPANY_MERGED = "company.merged"
    SEGMENT_ENTERED = "segment.entered"
    SEGMENT_LEFT = "segment.left"


class Event(models.Model):
    """One thing that happened, for one product. Append-only."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="notification_events")
    type = models.CharField(max_length=64, choices=EventType.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # DjangoJSONEncoder: emitters may pass datetimes (stored as ISO 8601 with Z), UUIDs, Decimals.
    data = models.JSONField(default=dict, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # The feed pages a product's events oldest first (optionally by type).
            models.Index(fields=["product", "created_at", "id"], name="notif_event_feed_idx"),
            models.Index(fields=["product", "type", "created_at", "id"], name="notif_event_type_feed_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class DisabledReason(models.TextChoices):
    NONE = "", "—"
    MANUAL = "manual", "Disabled by the product or staff"
    FAILING = "failing", "Failing for three days"
    GONE = "gone", "Receiver answered 410 Gone"


class WebhookEndpoint(models.Model):
    """A product's receiver of events. `event_types` empty means every type.

    The secret signs every delivery, so it must be recoverable: it is stored
    as is (like Stripe's endpoint secrets), shown once in the API answer and
    the admin page that created it, and never logged."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    event_types = models.JSONField(default=list, blank=True)
    description = models.CharField(max_length=200, blank=True, default="")
    enabled = models.BooleanField(default=True)
    secret = models.CharField(max_length=100, editable=False)
    disabled_reason = models.CharField(max_length=16, choices=DisabledReason.choices, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Start of the current run of failed attempts (None once one succeeds).
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product", "created_at"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed (gave up)"


class Delivery(models.Model):
    """One event to one endpoint, tried until it succeeds or three days pass.

    A worker claims due rows with SELECT … FOR UPDATE SKIP LOCKED and stamps
    them with a lease (`lease_token`, `leased_until`); it records the outcome
    only while the lease is still its own, so two workers never record one
    attempt twice, and a worker that died leaves rows that become due again
    when the lease ends."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now, null=True, blank=True)
    # Retries stop after this (three days after the event, or after a resend).
    retry_until = models.DateTimeField()
    leased_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        permissions = [("resend_delivery", "Can resend notification deliveries")]
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="notif_delivery_once_per_endpoint"),
        ]
        indexes = [
            # The work queue: only pending rows, by due time.
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="pending"), name="notif_delivery_due_idx"
            ),
            models.Index(fields=["endpoint", "status", "created_at"], name="notif_delivery_endpoint_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id}"


class DeliveryAttempt(models.Model):
    """One HTTP attempt of a delivery. Append-only."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(default=timezone.now)
    succeeded = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    response_excerpt = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-attempted_at", "-id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.pk}"
