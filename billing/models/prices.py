"""Mirror of Stripe prices: what a price id costs, for statements and MRR (SPEC §6, §8)."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class PriceInterval(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"
    YEAR = "year", "Year"


class Price(models.Model):
    """One Stripe price as last read from Stripe. Written only by the price
    webhooks and `manage.py sync_prices` (never edited by hand): Stripe is the
    source of truth, this row is a cache that statements and MRR can join."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stripe_price_id = models.CharField(max_length=255, unique=True)
    stripe_product_id = models.CharField(max_length=255, db_index=True)
    product_name = models.CharField(max_length=255, blank=True, default="", help_text="The Stripe product's name.")
    nickname = models.CharField(max_length=255, blank=True, default="")
    lookup_key = models.CharField(max_length=255, blank=True, default="")
    # Minor units (cents). Empty for prices without a flat per-unit amount
    # (tiered or customer-chosen); `unit_amount_decimal` keeps sub-cent prices.
    unit_amount = models.BigIntegerField(null=True, blank=True)
    unit_amount_decimal = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    currency = models.CharField(max_length=3, help_text="ISO 4217, lower case, as Stripe sends it.")
    # Empty interval = a one-time price.
    interval = models.CharField(max_length=8, choices=PriceInterval.choices, blank=True, default="")
    interval_count = models.PositiveIntegerField(null=True, blank=True)
    usage_type = models.CharField(max_length=16, blank=True, default="", help_text="licensed or metered")
    active = models.BooleanField(default=True)
    livemode = models.BooleanField(default=False)
    stripe_created_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(default=timezone.now, help_text="When SaaSDesk last read it from Stripe.")

    class Meta:
        ordering = ["stripe_product_id", "interval", "unit_amount"]
        verbose_name = "Stripe price"

    def __str__(self) -> str:
        name = self.nickname or self.product_name or self.stripe_price_id
        return f"{name} ({self.stripe_price_id})"

    @property
    def is_recurring(self) -> bool:
        return bool(self.interval)
