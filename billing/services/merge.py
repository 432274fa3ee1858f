"""Billing's part of a merge (SPEC §3: "subscriptions and billing profiles
(refused with 409 if both companies have a Stripe customer for the same
product)"; desk.services.company_merge orchestrates)."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from billing.models import GRANTING_STATUSES, BillingProfile, CreditPurchase, Invoice, MeterDrift, Subscription
from companies.actors import Actor
from companies.models import Company
from config.errors import Conflict

from ..error_codes import BillingErrorCode
from .subscriptions import company_access_sync, company_billing_periods_push


@dataclass(frozen=True)
class BillingMerged:
    subscriptions: int
    billing_profiles: int
    invoices: int
    purchases: int


def _stripe_customers(company: Company) -> dict:
    """product id → the Stripe customers the company is billed to there
    (its billing profile and its subscriptions' customers)."""
    customers: dict = {}
    for product_id, customer in BillingProfile.objects.filter(company=company).values_list(
        "product_id", "stripe_customer_id"
    ):
        customers.setdefault(product_id, set()).add(customer)
    for product_id, customer in Subscription.objects.filter(company=company).values_list(
        "product_id", "stripe_customer_id"
    ):
        if customer:
            customers.setdefault(product_id, set()).add(customer)
    return customers


def billing_merge_check(*, source: Company, target: Company) -> None:
    """409 when both companies are Stripe customers in the same product: two
    customers' cards, invoices and subscriptions cannot be folded into one
    account without choosing which Stripe customer survives, and we never
    guess that. Staff cancel or move one side in Stripe first."""
    kept = _stripe_customers(target)
    for product_id, customers in _stripe_customers(source).items():
        if customers and kept.get(product_id):
            raise Conflict(
                "Both companies have a Stripe customer for the same product; billing cannot be merged "
                "automatically. Cancel the duplicate's subscriptions or move them in Stripe first.",
                details={"productId": str(product_id)},
                reason=BillingErrorCode.MERGE_BOTH_STRIPE_CUSTOMERS,
            )


def billing_merge(*, source: Company, target: Company, actor: Actor, reason: str) -> BillingMerged:
    """Move the duplicate's billing profiles, subscriptions, invoices and
    credit purchases to the kept company (`billing_merge_check` first). Where a
    subscription that grants access moved, the kept company's tier layer
    follows it (`company_access_sync`) and metering learns its billing
    periods. Stripe itself is not called: its objects are found by their
    Stripe ids, which do not change."""
    billing_merge_check(source=source, target=target)
    now = timezone.now()
    granting_products = set(
        Subscription.objects.filter(company=source, status__in=GRANTING_STATUSES, tier__isnull=False).values_list(
            "product_id", flat=True
        )
    )
    profiles = BillingProfile.objects.filter(company=source).update(company=target, updated_at=now)
    subscriptions = Subscription.objects.filter(company=source).update(company=target, updated_at=now)
    invoices = Invoice.objects.filter(company=source).update(company=target)
    purchases = CreditPurchase.objects.filter(company=source).update(company=target)
    MeterDrift.objects.filter(company=source).update(company=target)
    for product_id in sorted(granting_products, key=str):
        company_access_sync(company=target, product_id=product_id, actor=actor, reason=f"Merge: {reason}")
    if subscriptions:
        company_billing_periods_push(company_id=target.pk)
        company_billing_periods_push(company_id=source.pk)
    return BillingMerged(subscriptions=subscriptions, billing_profiles=profiles, invoices=invoices, purchases=purchases)
