"""MRR (SPEC §8): normalisation of prices to a month, which subscriptions
count, rounding once per account; snapshots that never rewrite the past."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.utils import timezone

from billing.models import Price, SubscriptionStatus
from companies.models import Account
from insights.models import RevenueSnapshot
from insights.revenue import account_mrr, monthly_amount
from insights.services import revenue_snapshot
from tests.factories.billing import SubscriptionFactory


def price(pid="price_1", amount=1000, interval="month", count=1, currency="usd", usage_type="licensed", decimal=None):
    return Price(stripe_price_id=pid, unit_amount=amount, unit_amount_decimal=decimal, interval=interval,
                 interval_count=count, currency=currency, usage_type=usage_type)


@pytest.mark.parametrize(
    "given, quantity, expected",
    [
        (price(amount=4900), 1, Decimal(4900)),
        (price(amount=4900), 3, Decimal(14700)),
        (price(amount=120000, interval="year"), 1, Decimal(10000)),
        (price(amount=1000, interval="week"), 1, Decimal(1000) * 52 / 12),  # 4333.33…
        (price(amount=3000, interval="month", count=3), 1, Decimal(1000)),  # quarterly
        (price(amount=100, interval="day"), 1, Decimal(100) * 365 / 12),
        (price(amount=None, decimal=Decimal("0.5")), 10, Decimal(5)),
        (price(usage_type="metered"), 1, None),
        (price(interval=""), 1, None),  # one-time
        (price(amount=None), 1, None),  # tiered: no flat amount
    ],
)
def test_monthly_amount_normalises_to_a_month(given, quantity, expected):
    assert monthly_amount(given, quantity) == expected


def sub(status, *items):
    return SimpleNamespace(status=status, items=[{"price": p, "quantity": q} for p, q in items])


PRICES = {
    "m": price("m", 1000),
    "w": price("w", 1000, "week"),
    "y": price("y", 10001, "year"),
    "eur": price("eur", 5000, currency="eur"),
    "meter": price("meter", 3, usage_type="metered"),
}


@pytest.mark.parametrize(
    "subscriptions, expected",
    [
        ([sub("active", ("m", 2))], 2000),
        # Rounded once per account: 4333.33 + 833.42 = 5166.75 → 5167 (not 4333 + 833 = 5166).
        ([sub("active", ("w", 1)), sub("active", ("y", 1))], 5167),
        ([sub("past_due", ("m", 1))], 1000),  # still a customer while Stripe retries
        ([sub("trialing", ("m", 1))], 0),  # a trial pays nothing yet
        ([sub("canceled", ("m", 1)), sub("unpaid", ("m", 1)), sub("incomplete", ("m", 1))], 0),
        ([sub("active", ("m", 1), ("meter", 1), ("unknown", 1))], 1000),  # usage and unmirrored prices left out
    ],
)
def test_account_mrr(subscriptions, expected):
    assert account_mrr(subscriptions=subscriptions, prices=PRICES, currency="usd").amount == expected


def test_a_price_in_another_currency_is_left_out_and_flagged():
    result = account_mrr(subscriptions=[sub("active", ("m", 1), ("eur", 1))], prices=PRICES, currency="usd")
    assert (result.amount, result.other_currency) == (1000, ["eur"])


@pytest.mark.django_db
def test_snapshots_set_the_account_mrr_and_never_rewrite_past_days(product):
    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    company = CompanyFactory()
    ProductLinkFactory(product=product, company=company, external_org_id="org_1")
    for p in PRICES.values():
        p.stripe_product_id = "prod_1"
        p.save()
    subscription = SubscriptionFactory(company=company, product=product, status=SubscriptionStatus.ACTIVE,
                                       items=[{"price": "m", "quantity": 3}], cancel_at_period_end=True)
    yesterday = timezone.now() - timedelta(days=1)

    assert revenue_snapshot(now=yesterday) == 1
    subscription.items = [{"price": "m", "quantity": 5}]
    subscription.save()
    assert revenue_snapshot() == 1
    assert revenue_snapshot() == 0  # idempotent

    account = Account.objects.get(company=company, product=product)
    assert (account.mrr, account.currency) == (5000, "usd")
    history = list(RevenueSnapshot.objects.filter(account=account).order_by("day").values_list("mrr", flat=True))
    assert history == [3000, 5000]


def test_the_subscription_mirror_keeps_item_quantities():
    from billing.services.stripe_objects import subscription_items_summary

    stripe_subscription = {"items": {"data": [
        {"price": {"id": "price_a"}, "quantity": 3},
        {"price": "price_b"},
        {"plan": {"id": "plan_c"}, "quantity": 2},
    ]}}
    assert subscription_items_summary(stripe_subscription) == [
        {"price": "price_a", "quantity": 3}, {"price": "price_b", "quantity": 1}, {"price": "plan_c", "quantity": 2},
    ]


from insights.revenue import movement  # noqa: E402


@pytest.mark.parametrize(
    "opening, closing, before, expected",
    [
        (0, 1000, False, ("new", 1000)),
        (0, 1000, True, ("reactivation", 1000)),
        (1000, 0, True, ("churned", -1000)),
        (1000, 1500, True, ("expansion", 500)),
        (1500, 1000, True, ("contraction", -500)),
        (1000, 1000, True, None),
        (0, 0, True, None),  # started and left inside the period: in neither
    ],
)
def test_movement_classification(opening, closing, before, expected):
    assert movement(opening=opening, closing=closing, had_mrr_before=before) == expected


@pytest.mark.django_db
def test_revenue_endpoint_movements_sum_to_the_mrr_change(api, other_api, product):
    from datetime import date

    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    def account(name):
        company = CompanyFactory(name=name)
        ProductLinkFactory(product=product, company=company, external_org_id=f"org_{name}")
        return Account.objects.get(company=company, product=product)

    a, b, c, d = account("a"), account("b"), account("c"), account("d")

    def snap(acc, day, mrr):
        RevenueSnapshot.objects.create(account=acc, company_id=acc.company_id, product=product, day=day, mrr=mrr,
                                       currency="usd")

    snap(a, date(2026, 1, 10), 1000)  # January: a new, b new
    snap(b, date(2026, 1, 20), 2000)
    snap(c, date(2026, 1, 5), 500)  # c starts and leaves inside January: in neither
    snap(c, date(2026, 1, 25), 0)
    snap(a, date(2026, 2, 3), 1500)  # February: a expands, b churns, d new
    snap(b, date(2026, 2, 14), 0)
    snap(d, date(2026, 2, 20), 700)
    snap(b, date(2026, 3, 1), 1000)  # March: b reactivates, d contracts
    snap(d, date(2026, 3, 2), 300)

    body = api.get("/api/v1/insights/revenue", {"from": "2026-01-01", "to": "2026-04-01"}).json()

    assert body["currency"] == "usd"
    jan, feb, mar = body["periods"]
    assert (jan["mrr"], jan["newMrr"], jan["newCustomers"], jan["activeCustomers"], jan["arpu"]) == (3000, 3000, 2, 2, 1500)
    assert (feb["mrr"], feb["expansionMrr"], feb["churnedMrr"], feb["newMrr"], feb["churnedCustomers"]) == (2200, 500, 2000, 700, 1)
    assert (feb["customerChurnRate"], feb["revenueChurnRate"]) == (50.0, round(100 * 2000 / 3000, 2))
    assert (mar["mrr"], mar["reactivationMrr"], mar["contractionMrr"]) == (2800, 1000, 400)
    previous = 0
    for period in (jan, feb, mar):
        change = (period["newMrr"] + period["expansionMrr"] + period["reactivationMrr"]
                  - period["contractionMrr"] - period["churnedMrr"])
        assert change == period["mrr"] - previous
        previous = period["mrr"]
    # Another product's key sees none of it.
    other = other_api.get("/api/v1/insights/revenue", {"from": "2026-01-01", "to": "2026-04-01"}).json()
    assert all(period["mrr"] == 0 for period in other["periods"])
    assert api.get("/api/v1/insights/revenue", {"from": "2026-01-01", "to": "2026-04-01", "interval": "year"}).status_code == 400


@pytest.mark.django_db
def test_revenue_counts_credits_purchased_used_and_their_utilisation(api, other_api, product):
    from datetime import UTC, timedelta

    from django.utils import timezone

    from credits.services import credits_debit, credits_grant, credits_purchase_land
    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    company = CompanyFactory(name="Credits Co")
    ProductLinkFactory(product=product, company=company, external_org_id="org_credits")
    credits_purchase_land(company_id=company.pk, product_id=product.pk, credits=1000, payment_intent_id="pi_1", actor="t")
    credits_grant(company_id=company.pk, product_id=product.pk, amount=200, reason="welcome")
    credits_debit(product_id=product.pk, company_id=company.pk, amount=300, job_id="j1", source_service="tests")
    today = timezone.now().astimezone(UTC).date()
    query = {"from": today.isoformat(), "to": (today + timedelta(days=1)).isoformat(), "interval": "day"}

    (period,) = api.get("/api/v1/insights/revenue", query).json()["periods"]
    # used ÷ (purchased + granted) = 300 ÷ 1200
    assert (period["creditsPurchased"], period["creditsUsed"], period["creditUtilization"]) == (1000, 300, 25.0)
    (other,) = other_api.get("/api/v1/insights/revenue", query).json()["periods"]
    assert (other["creditsPurchased"], other["creditsUsed"], other["creditUtilization"]) == (0, 0, 0.0)
