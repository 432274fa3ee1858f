"""Stripe prices mirrored into `Price`: `manage.py sync_prices`, the
`price.*` webhooks (re-read from Stripe), MRR normalisation and the
read-only admin."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from billing.models import Price, StripeWebhookEvent, WebhookEventStatus
from billing.selectors import price_monthly_amount
from billing.services.webhooks import webhook_events_reprocess
from tests.billing.test_webhooks import last_event, post_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_prices(fake_stripe):
    product = fake_stripe.create_product(name="Chat App")
    meter = fake_stripe.create_meter("ai_credit")
    return {
        "monthly": fake_stripe.create_price(product=product["id"], unit_amount=4900, currency="eur",
                                            recurring={"interval": "month"}, nickname="Pro monthly"),
        "yearly": fake_stripe.create_price(product=product["id"], unit_amount=49000, currency="eur",
                                           recurring={"interval": "year"}, lookup_key="pro_yearly"),
        "fortnightly": fake_stripe.create_price(product=product["id"], unit_amount=1200, currency="eur",
                                                recurring={"interval": "week", "interval_count": 2}),
        "metered": fake_stripe.create_price(product=product["id"], unit_amount=2, currency="eur",
                                            recurring={"interval": "month", "usage_type": "metered",
                                                       "meter": meter["id"]}),
        "one_time": fake_stripe.create_price(product=product["id"], unit_amount=1000, currency="usd"),
    }


def sync(*args) -> str:
    out = StringIO()
    call_command("sync_prices", *args, stdout=out)
    return out.getvalue().strip()


class TestSyncPrices:
    def test_mirrors_every_price_with_amount_currency_and_interval(self, fake_stripe, stripe_prices):
        assert sync() == "created=5 updated=0 unchanged=0"

        yearly = Price.objects.get(stripe_price_id=stripe_prices["yearly"]["id"])
        assert (yearly.unit_amount, yearly.currency, yearly.interval, yearly.interval_count) == (49000, "eur", "year", 1)
        assert (yearly.product_name, yearly.lookup_key, yearly.active) == ("Chat App", "pro_yearly", True)
        fortnightly = Price.objects.get(stripe_price_id=stripe_prices["fortnightly"]["id"])
        assert (fortnightly.interval, fortnightly.interval_count) == ("week", 2)
        assert Price.objects.get(stripe_price_id=stripe_prices["metered"]["id"]).usage_type == "metered"
        one_time = Price.objects.get(stripe_price_id=stripe_prices["one_time"]["id"])
        assert (one_time.interval, one_time.interval_count, one_time.is_recurring) == ("", None, False)

    def test_is_idempotent_and_picks_up_changes(self, fake_stripe, stripe_prices):
        sync()
        fake_stripe.client().v1.prices.update(stripe_prices["monthly"]["id"], {"active": False})

        assert sync() == "created=0 updated=1 unchanged=4"
        assert Price.objects.get(stripe_price_id=stripe_prices["monthly"]["id"]).active is False
        assert sync("--active-only") == "created=0 updated=0 unchanged=4"

    def test_pages_through_more_than_one_page(self, fake_stripe):
        product = fake_stripe.create_product(name="Many")
        for amount in range(1, 131):
            fake_stripe.create_price(product=product["id"], unit_amount=amount, currency="usd")

        assert sync() == "created=130 updated=0 unchanged=0"
        assert fake_stripe.request_count("/v1/prices", method="GET") == 2

    def test_stripe_down_is_a_clear_error(self, fake_stripe, stripe_prices):
        fake_stripe.fail_next(1, status=503)

        with pytest.raises(CommandError, match="Stripe is unreachable"):
            sync()
        assert not Price.objects.exists()

    def test_without_stripe_key(self, stripe_unconfigured):
        with pytest.raises(CommandError, match="not configured"):
            sync()


class TestPriceWebhooks:
    def test_created_then_updated_follow_stripe(self, client, fake_stripe, stripe_prices):
        price_id = stripe_prices["monthly"]["id"]
        response = post_event(client, fake_stripe, last_event(fake_stripe, "price.created", price_id))

        assert response.status_code == 200
        assert Price.objects.get(stripe_price_id=price_id).nickname == "Pro monthly"
        assert StripeWebhookEvent.objects.get().result["action"] == "created"

        fake_stripe.client().v1.prices.update(price_id, {"nickname": "Pro (monthly)", "active": False})
        post_event(client, fake_stripe, last_event(fake_stripe, "price.updated", price_id))
        price = Price.objects.get(stripe_price_id=price_id)
        assert (price.nickname, price.active) == ("Pro (monthly)", False)

    def test_a_stale_event_still_mirrors_the_current_price(self, client, fake_stripe, stripe_prices):
        price_id = stripe_prices["monthly"]["id"]
        fake_stripe.client().v1.prices.update(price_id, {"nickname": "Renamed"})

        # The older price.created arrives after the update: the price is re-read.
        post_event(client, fake_stripe, last_event(fake_stripe, "price.created", price_id))
        post_event(client, fake_stripe, last_event(fake_stripe, "price.updated", price_id))

        assert Price.objects.get(stripe_price_id=price_id).nickname == "Renamed"
        assert Price.objects.count() == 1

    def test_unknown_price_is_ignored(self, client, fake_stripe):
        event = fake_stripe.build_event("price.created", {"id": "price_gone", "object": "price"})

        assert post_event(client, fake_stripe, event).status_code == 200
        assert StripeWebhookEvent.objects.get().result["action"] == "ignored"
        assert not Price.objects.exists()

    def test_stripe_down_fails_the_event_and_reprocess_mirrors_it(self, client, fake_stripe, stripe_prices):
        price_id = stripe_prices["yearly"]["id"]
        fake_stripe.fail_next(1, status=500, paths="/v1/prices")

        response = post_event(client, fake_stripe, last_event(fake_stripe, "price.created", price_id))

        assert response.status_code == 503
        stored = StripeWebhookEvent.objects.get()
        assert stored.status == WebhookEventStatus.FAILED and not Price.objects.exists()
        assert webhook_events_reprocess(webhook_event_ids=[stored.pk])["processed"] == 1
        assert Price.objects.get(stripe_price_id=price_id).unit_amount == 49000

    def test_product_rename_reaches_its_prices(self, client, fake_stripe, stripe_prices):
        sync()
        product_id = stripe_prices["monthly"]["product"]
        fake_stripe.client().v1.products.update(product_id, {"name": "Chat App Pro"})

        post_event(client, fake_stripe, last_event(fake_stripe, "product.updated", product_id))

        assert set(Price.objects.values_list("product_name", flat=True)) == {"Chat App Pro"}


class TestMonthlyAmount:
    @pytest.mark.parametrize("interval, count, amount, expected", [
        ("month", 1, 4900, Decimal(4900)),
        ("month", 3, 9000, Decimal(3000)),
        ("year", 1, 12000, Decimal(1000)),
        ("week", 1, 1200, Decimal(5200)),
        ("week", 2, 1200, Decimal(2600)),
    ])
    def test_normalises_to_a_month(self, interval, count, amount, expected):
        price = Price(stripe_price_id="p", currency="eur", interval=interval, interval_count=count,
                      unit_amount=amount, unit_amount_decimal=Decimal(amount), usage_type="licensed")
        assert price_monthly_amount(price=price, quantity=1) == expected

    def test_quantity_metered_and_one_time(self):
        seats = Price(currency="eur", interval="month", interval_count=1, unit_amount_decimal=Decimal(500))
        assert price_monthly_amount(price=seats, quantity=3) == Decimal(1500)
        metered = Price(currency="eur", interval="month", interval_count=1, unit_amount_decimal=Decimal(2),
                        usage_type="metered")
        assert price_monthly_amount(price=metered) is None
        assert price_monthly_amount(price=Price(currency="eur", unit_amount_decimal=Decimal(1000))) is None


class TestPriceAdmin:
    @pytest.fixture
    def superuser_client(self):
        client = Client()
        client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
        return client

    def test_list_and_detail_are_read_only(self, superuser_client, fake_stripe, stripe_prices):
        sync()
        price = Price.objects.get(stripe_price_id=stripe_prices["fortnightly"]["id"])

        listing = superuser_client.get("/admin/billing/price/?active__exact=1")
        detail = superuser_client.get(f"/admin/billing/price/{price.pk}/change/")

        assert listing.status_code == 200 and b"2 weeks" in listing.content and b"49,000.00 EUR" not in listing.content
        assert b"490.00 EUR" in listing.content
        assert detail.status_code == 200 and b"Save" not in detail.content
        assert b"26.00 EUR" in detail.content  # 12.00 every 2 weeks, per month
        assert superuser_client.get("/admin/billing/price/add/").status_code == 403

    def test_refresh_action_re_reads_stripe(self, superuser_client, fake_stripe, stripe_prices):
        sync()
        price = Price.objects.get(stripe_price_id=stripe_prices["monthly"]["id"])
        fake_stripe.client().v1.prices.update(price.stripe_price_id, {"nickname": "From Stripe"})

        response = superuser_client.post("/admin/billing/price/", {
            "action": "refresh_from_stripe", "_selected_action": [str(price.pk)]}, follow=True)

        assert response.status_code == 200 and b"Re-read 1 price" in response.content
        price.refresh_from_db()
        assert price.nickname == "From Stripe"
