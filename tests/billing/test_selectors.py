"""Billing reads and the billing periods billing pushes to metering; tier resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.services.subscriptions import company_billing_periods_push
from billing.services.tiers import tier_resolve
from metering.periods import period_for
from tests.factories.billing import SubscriptionFactory

pytestmark = pytest.mark.django_db


def test_billing_period_follows_the_active_subscription(company, product):
    start = datetime(2026, 3, 15, 10, tzinfo=UTC)
    SubscriptionFactory(
        company=company, product=product, status="active",
        current_period_start=start, current_period_end=start + timedelta(days=30),
    )
    company_billing_periods_push(company_id=company.pk)  # what every subscription write does

    period = period_for("billing_period", start + timedelta(days=3), company_id=company.pk)

    assert (period.start, period.end) == (start, start + timedelta(days=30))


def test_billing_period_without_subscription_is_the_calendar_month(company):
    period = period_for("billing_period", datetime(2026, 3, 20, tzinfo=UTC), company_id=company.pk)

    assert (period.start, period.end) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


def test_a_canceled_subscription_has_no_billing_period(company, product):
    start = datetime(2026, 3, 15, 10, tzinfo=UTC)
    SubscriptionFactory(
        company=company, product=product, status="canceled",
        current_period_start=start, current_period_end=start + timedelta(days=30),
    )
    company_billing_periods_push(company_id=company.pk)

    assert period_for("billing_period", start + timedelta(days=1), company_id=company.pk).start == datetime(2026, 3, 1, tzinfo=UTC)


class TestTierResolve:
    def test_base_fee_wins(self, catalog):
        assert tier_resolve(product_id=catalog.product.pk, price_ids=["price_ai", "price_ent_base"]).code == "enterprise"

    def test_feature_price_shared_by_tiers_picks_the_higher_one(self, catalog):
        assert tier_resolve(product_id=catalog.product.pk, price_ids=["price_ai"]).code == "enterprise"

    def test_metadata_tier_code(self, catalog):
        assert tier_resolve(product_id=catalog.product.pk, price_ids=["price_ent_base"], metadata={"tier_code": "pro"}).code == "pro"

    def test_unknown_prices(self, catalog):
        assert tier_resolve(product_id=catalog.product.pk, price_ids=["price_unknown"]) is None

    def test_other_products_prices_do_not_match(self, catalog, other_product):
        assert tier_resolve(product_id=other_product.pk, price_ids=["price_pro_base"]) is None
