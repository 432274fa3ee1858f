"""End to end: the fake Stripe POSTs its own signed webhooks to the running app
(live server) while a checkout completes and a subscription is cancelled."""

from __future__ import annotations

import pytest

from billing.models import StripeWebhookEvent, Subscription
from tests.billing.conftest import access_of, completed_checkout

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def webhooks_to_app(fake_stripe, live_server):
    fake_stripe.webhook_url = f"{live_server.url}/stripe/webhook"
    yield fake_stripe
    fake_stripe.wait_for_webhooks(timeout=10)
    fake_stripe.webhook_url = None


def test_checkout_and_cancellation_through_real_webhooks(webhooks_to_app, company, stripe_catalog):
    fake = webhooks_to_app
    session = completed_checkout(fake, client_reference_id=str(company.pk))
    assert fake.wait_for_webhooks(timeout=15)

    subscription = Subscription.objects.get(checkout_session_id=session["id"])
    assert subscription.company == company
    assert subscription.tier.code == "pro"
    assert access_of(company, stripe_catalog.sso).is_enabled

    fake.cancel_subscription(subscription.stripe_subscription_id)
    assert fake.wait_for_webhooks(timeout=15)

    subscription.refresh_from_db()
    assert subscription.status == "canceled"
    assert not access_of(company, stripe_catalog.sso).is_enabled
    assert all(delivery["status"] == 200 for delivery in fake.webhook_deliveries), fake.webhook_deliveries
    assert StripeWebhookEvent.objects.count() == len(fake.webhook_deliveries)
    assert not StripeWebhookEvent.objects.filter(status="failed").exists()
