"""Reads of the billing app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from companies.models import Company
from companies.selectors import company_get_visible
from entitlements.models import FeatureAccess
from entitlements.rules import access_in_force_q

from .models import GRANTING_STATUSES, BillingProfile, Subscription


@dataclass(frozen=True)
class BillingStatus:
    company: Company
    billing_profile: BillingProfile | None
    active_subscriptions: list[Subscription]
    enabled_features_count: int


def subscriptions_active(*, company_id, product_id=None) -> QuerySet[Subscription]:
    """Subscriptions that currently grant access (active, trialing, past due), newest first."""
    subscriptions = Subscription.objects.filter(company_id=company_id, status__in=GRANTING_STATUSES)
    if product_id is not None:
        subscriptions = subscriptions.filter(product_id=product_id)
    return subscriptions.select_related("tier").order_by("-created_at")


def billing_status(*, product_id, company_id) -> BillingStatus:
    """The billing state of a company as seen by one product: its Stripe
    customer, the product's active subscriptions, and how many of the
    product's features it may use now. NotFound if not visible."""
    company = company_get_visible(product_id=product_id, company_id=company_id)
    profile = BillingProfile.objects.filter(company=company).first()
    now = timezone.now()
    enabled = FeatureAccess.objects.filter(access_in_force_q(now), company=company, feature__product_id=product_id).count()
    return BillingStatus(
        company=company,
        billing_profile=profile,
        active_subscriptions=list(subscriptions_active(company_id=company.pk, product_id=product_id)),
        enabled_features_count=enabled,
    )


def billing_period_for(*, company_id, at: datetime) -> tuple[datetime, datetime] | None:
    """The current period of the company's granting subscription that contains
    `at` (metering's `billing_period` resolver); None → calendar month."""
    subscription = (
        Subscription.objects.filter(
            company_id=company_id,
            status__in=GRANTING_STATUSES,
            current_period_start__lte=at,
            current_period_end__gt=at,
        )
        .order_by("-current_period_start")
        .values_list("current_period_start", "current_period_end")
        .first()
    )
    return subscription if subscription else None
