"""Reads of the billing app."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone

from companies.models import Company
from companies.selectors import company_get_visible
from config.errors import NotFound
from entitlements.models import FeatureAccess
from entitlements.rules import access_in_force_layers_q

from .models import GRANTING_STATUSES, BillingProfile, CreditPurchase, Invoice, Price, Subscription


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
    """The billing state of a company as seen by one product: the Stripe
    customer of its account with that product (never another product's), the
    product's active subscriptions, and how many of the product's features it
    may use now. NotFound if not visible."""
    company = company_get_visible(product_id=product_id, company_id=company_id)
    profile = BillingProfile.objects.filter(company=company, product_id=product_id).first()
    now = timezone.now()
    enabled = FeatureAccess.objects.filter(access_in_force_layers_q(now), company=company, feature__product_id=product_id).count()
    return BillingStatus(
        company=company,
        billing_profile=profile,
        active_subscriptions=list(subscriptions_active(company_id=company.pk, product_id=product_id)),
        enabled_features_count=enabled,
    )


# How many of each billing interval make a month (SPEC §8: yearly / 12,
# weekly × 52 / 12; daily × 365 / 12). The one home of this rule.
_INTERVALS_PER_MONTH = {
    "day": Decimal(365) / Decimal(12),
    "week": Decimal(52) / Decimal(12),
    "month": Decimal(1),
    "year": Decimal(1) / Decimal(12),
}


def price_get(*, stripe_price_id: str) -> Price | None:
    return Price.objects.filter(stripe_price_id=stripe_price_id).first()


def prices_by_stripe_id(*, stripe_price_ids) -> dict[str, Price]:
    """The mirrored prices among these ids (unknown ids are left out)."""
    return {price.stripe_price_id: price for price in Price.objects.filter(stripe_price_id__in=list(stripe_price_ids))}


def price_monthly_amount(*, price: Price, quantity: int = 1) -> Decimal | None:
    """What `quantity` of a recurring licensed price costs per month, in minor
    units, unrounded (MRR rounds once per account and day). None for one-time
    and metered prices (metered usage is not MRR) and prices without an amount."""
    if not price.interval or price.usage_type == "metered" or price.unit_amount_decimal is None:
        return None
    per_interval = price.unit_amount_decimal * quantity
    return per_interval * _INTERVALS_PER_MONTH[price.interval] / (price.interval_count or 1)


# --- customers and subscriptions managed from SaaSDesk ----------------------------------


def billing_profile_for(*, company_id, product_id) -> BillingProfile | None:
    """The Stripe customer of the company's account with this product, if any
    (never another product's: each account has its own customer)."""
    return BillingProfile.objects.filter(company_id=company_id, product_id=product_id).first()


def subscriptions_list(*, product_id, company_id) -> QuerySet[Subscription]:
    """The product's subscriptions of a visible company (all statuses), newest first."""
    company = company_get_visible(product_id=product_id, company_id=company_id)
    return (
        Subscription.objects.filter(company=company, product_id=product_id)
        .select_related("tier")
        .order_by("-created_at", "-id")
    )


def subscription_get_visible(*, product_id, subscription_id) -> Subscription:
    """One of the product's subscriptions whose company the product sees; 404 otherwise
    (another product's subscription is as unknown as a missing one)."""
    subscription = (
        Subscription.objects.select_related("tier", "company")
        .filter(pk=subscription_id, product_id=product_id)
        .first()
    )
    if subscription is None:
        raise NotFound("Unknown subscription.")
    company_get_visible(product_id=product_id, company_id=subscription.company_id)
    return subscription


def purchases_list(*, product_id, company_id):
    """The product's credit purchases of a visible company, newest first."""
    company = company_get_visible(product_id=product_id, company_id=company_id)
    return CreditPurchase.objects.filter(company=company, product_id=product_id).order_by("-created_at", "-id")


def invoices_list(*, product_id, company_id, status: str | None = None) -> QuerySet[Invoice]:
    """The product's mirrored invoices of a visible company, newest first."""
    company = company_get_visible(product_id=product_id, company_id=company_id)
    invoices = Invoice.objects.filter(company=company, product_id=product_id)
    if status:
        invoices = invoices.filter(status=status)
    return invoices.order_by("-stripe_created_at", "-id")


def invoice_get_visible(*, product_id, invoice_id) -> Invoice:
    invoice = Invoice.objects.filter(pk=invoice_id, product_id=product_id).first()
    if invoice is None:
        raise NotFound("No such invoice.")
    company_get_visible(product_id=product_id, company_id=invoice.company_id)
    return invoice


@dataclass(frozen=True)
class PaymentFacts:
    failing_subscriptions: list[str]
    uncollectible_invoices: int
    open_invoices_due: int


FAILING_SUBSCRIPTION_STATUSES = ("past_due", "unpaid")


def payment_facts(*, product_id, company_ids, uncollectible_since) -> dict:
    """{company_id: PaymentFacts} of the product's accounts: subscriptions
    whose payment fails (past_due, unpaid), invoices marked uncollectible
    since `uncollectible_since`, open invoices with an amount due. Two
    queries (insights' payment health). Companies with none of these are absent."""
    from collections import defaultdict

    from django.db.models import Count, Q

    company_ids = list(company_ids)
    failing: dict = defaultdict(list)
    for company_id, status in Subscription.objects.filter(
        product_id=product_id, company_id__in=company_ids, status__in=FAILING_SUBSCRIPTION_STATUSES
    ).values_list("company_id", "status"):
        failing[company_id].append(status)
    invoices = (
        Invoice.objects.filter(product_id=product_id, company_id__in=company_ids)
        .filter(Q(status="uncollectible", stripe_created_at__gte=uncollectible_since) | Q(status="open", amount_due__gt=0))
        .values("company_id")
        .annotate(
            uncollectible=Count("id", filter=Q(status="uncollectible")), open_due=Count("id", filter=Q(status="open"))
        )
        .order_by()
    )
    counts = {row["company_id"]: (row["uncollectible"], row["open_due"]) for row in invoices}
    return {
        company_id: PaymentFacts(
            failing_subscriptions=failing.get(company_id, []),
            uncollectible_invoices=counts.get(company_id, (0, 0))[0],
            open_invoices_due=counts.get(company_id, (0, 0))[1],
        )
        for company_id in set(failing) | set(counts)
    }


def webhook_events_failed(*, limit: int = 5) -> list:
    """The newest Stripe webhook events whose processing failed (up to
    `limit` + 1, so a caller can say "more"): the admin dashboard."""
    from .models import StripeWebhookEvent, WebhookEventStatus

    return list(
        StripeWebhookEvent.objects.filter(status=WebhookEventStatus.FAILED)
        .order_by("-received_at")
        .only("id", "type", "stripe_event_id", "received_at", "processing_error")[: limit + 1]
    )
