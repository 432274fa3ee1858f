"""Mirror of Stripe subscriptions, linked to a company in one product."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from companies.models import Company, Product
from entitlements.models import Tier


class SubscriptionStatus(models.TextChoices):
    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete (expired)"
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"
    UNPAID = "unpaid", "Unpaid"
    PAUSED = "paused", "Paused"


# Statuses in which a subscription grants its tier. past_due keeps access while
# Stripe retries the payment (smart retries); unpaid/canceled drop it.
GRANTING_STATUSES = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE})


class Subscription(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="subscriptions")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="subscriptions")
    stripe_subscription_id = models.CharField(max_length=255, unique=True)
    stripe_customer_id = models.CharField(max_length=255, db_index=True)
    status = models.CharField(max_length=24, choices=SubscriptionStatus.choices, default=SubscriptionStatus.INCOMPLETE)
    tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="subscriptions")
    display_name = models.CharField(max_length=200, blank=True, default="")
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    # Set when the subscription came through a claimed checkout session: the
    # unique constraint is what makes a session claimable only once.
    checkout_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    price_ids = models.JSONField(default=list, blank=True, help_text="Stripe price ids of the items, as last read.")
    items = models.JSONField(
        default=list, blank=True, help_text='The items as last read: [{"price": "price_…", "quantity": 1}] (MRR).'
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["company", "product", "status"], name="subscription_company_status")]

    def __str__(self) -> str:
        return self.display_name or self.stripe_subscription_id

    @property
    def grants_access(self) -> bool:
        return self.status in GRANTING_STATUSES
