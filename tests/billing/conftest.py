"""Billing fixtures: a fake Stripe server the official SDK talks to over real
HTTP, and a small catalog (free default tier, pro, enterprise) whose Stripe
prices exist on the fake."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from billing.services.delivery import meter_event_sessions_forget
from tests.fakes.stripe_server import FakeStripe

WEBHOOK_SECRET = "whsec_test_saasdesk"
API_KEY = "sk_test_saasdesk"


@pytest.fixture(scope="session")
def _fake_stripe_server():
    fake = FakeStripe(webhook_secret=WEBHOOK_SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_stripe(_fake_stripe_server, settings):
    """The fake Stripe, reset, with the app's settings pointing at it."""
    fake = _fake_stripe_server
    fake.reset()
    settings.STRIPE_API_KEY = API_KEY
    settings.STRIPE_API_BASE = fake.api_base
    settings.STRIPE_METER_EVENTS_API_BASE = fake.meter_events_api_base
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_TIMEOUT_SECONDS = 2
    settings.BILLING_DELIVERY_BACKOFF_BASE_SECONDS = 30
    meter_event_sessions_forget()
    yield fake
    fake.clear_failures()
    meter_event_sessions_forget()


@pytest.fixture
def stripe_unconfigured(settings):
    settings.STRIPE_API_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    meter_event_sessions_forget()


@dataclass
class Catalog:
    product: object
    ai_credit: object
    sso: object
    free: object
    pro: object
    enterprise: object


def make_catalog(product):
    from entitlements.models import Feature, Tier, TierFeature

    ai_credit = Feature.objects.create(
        product=product, code="ai_credit", name="AI credits", kind="metered", unit="credit",
        reset_period="monthly", stripe_meter_event_name="ai_credit",
    )
    sso = Feature.objects.create(product=product, code="sso", name="Single sign-on", kind="boolean")
    free = Tier.objects.create(product=product, code="free", name="Free", is_default=True, display_order=0)
    TierFeature.objects.create(tier=free, feature=ai_credit, included_quantity=100, quantity_limit=100)
    pro = Tier.objects.create(
        product=product, code="pro", name="Pro", display_order=1, base_fee_stripe_price_id="price_pro_base",
        base_fee_unit_amount=4900, base_fee_currency="eur", base_fee_interval="month",
    )
    TierFeature.objects.create(tier=pro, feature=ai_credit, included_quantity=1000, quantity_limit=None, stripe_price_id="price_ai")
    TierFeature.objects.create(tier=pro, feature=sso)
    enterprise = Tier.objects.create(
        product=product, code="enterprise", name="Enterprise", display_order=2, base_fee_stripe_price_id="price_ent_base",
    )
    TierFeature.objects.create(tier=enterprise, feature=ai_credit, included_quantity=10000, stripe_price_id="price_ai")
    TierFeature.objects.create(tier=enterprise, feature=sso)
    return Catalog(product=product, ai_credit=ai_credit, sso=sso, free=free, pro=pro, enterprise=enterprise)


@pytest.fixture
def catalog(product):
    return make_catalog(product)


def seed_stripe_prices(fake: FakeStripe) -> None:
    """The Stripe side of the catalog: prices with the ids the tiers name."""
    stripe_product = fake.create_product(name="Chat App")
    fake.create_price(id="price_pro_base", product=stripe_product["id"], unit_amount=4900, currency="eur",
                      recurring={"interval": "month"})
    fake.create_price(id="price_ent_base", product=stripe_product["id"], unit_amount=49900, currency="eur",
                      recurring={"interval": "month"})
    fake.create_price(id="price_ai", product=stripe_product["id"], unit_amount=1, currency="eur",
                      recurring={"interval": "month", "usage_type": "metered"})
    fake.create_price(id="price_other", product=stripe_product["id"], unit_amount=100, currency="eur",
                      recurring={"interval": "month"})


@pytest.fixture
def stripe_catalog(fake_stripe, catalog):
    seed_stripe_prices(fake_stripe)
    return catalog


@pytest.fixture
def company(product):
    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    company = CompanyFactory(name="Acme Inc", domain="acme.com")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    return company


@pytest.fixture
def other_company(product):
    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    company = CompanyFactory(name="Globex", domain="globex.com")
    ProductLinkFactory(product=product, company=company, external_org_id="org_globex")
    return company


def completed_checkout(fake: FakeStripe, *, prices=("price_pro_base",), metadata=None, client_reference_id=None) -> dict:
    """A paid subscription checkout session (created through the SDK, paid on the fake)."""
    session = open_checkout(fake, prices=prices, metadata=metadata, client_reference_id=client_reference_id)
    return fake.complete_checkout_session(session["id"])


def open_checkout(fake: FakeStripe, *, prices=("price_pro_base",), metadata=None, client_reference_id=None) -> dict:
    params = {
        "mode": "subscription",
        "line_items": [{"price": price, "quantity": 1} for price in prices],
        "success_url": "https://example.com/ok",
    }
    if metadata:
        params["metadata"] = metadata
    if client_reference_id:
        params["client_reference_id"] = client_reference_id
    session = fake.client(api_key=API_KEY).v1.checkout.sessions.create(params=params)
    return fake.get(session.id)


def access_of(company, feature):
    from entitlements.models import FeatureAccess

    return FeatureAccess.objects.filter(company=company, feature=feature).first()


def seed_usage_events(company, feature, count, *, billable_delta=1, event_time=None, product=None, status="pending"):
    """`count` usage events straight into the table (for volume and for event
    times the API would refuse), each with a billable delta, pending delivery."""
    from datetime import timedelta

    from django.utils import timezone

    from metering.models import UsageEvent, UsageMeter

    now = timezone.now()
    event_time = event_time or now
    meter, _ = UsageMeter.objects.get_or_create(
        company=company, feature=feature, period_start=event_time.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        defaults={"period_end": None, "value": 0},
    )
    events = [
        UsageEvent(
            product_id=product.pk if product else feature.product_id,
            company=company,
            feature=feature,
            meter=meter,
            event_type="increment",
            quantity=abs(billable_delta) or 1,
            previous_value=0,
            new_value=abs(billable_delta) or 1,
            billable_delta=billable_delta,
            event_time=event_time,
            created_at=now + timedelta(microseconds=index),
            stripe_delivery_status=status,
        )
        for index in range(count)
    ]
    return UsageEvent.objects.bulk_create(events)


def make_due(events=None):
    """Move every scheduled retry into the past (instead of waiting for the backoff)."""
    from datetime import timedelta

    from django.utils import timezone

    from metering.models import UsageEvent

    queryset = UsageEvent.objects.filter(stripe_next_attempt_at__isnull=False)
    if events is not None:
        queryset = queryset.filter(pk__in=[event.pk for event in events])
    queryset.update(stripe_next_attempt_at=timezone.now() - timedelta(seconds=1))


@pytest.fixture
def billed_company(company, fake_stripe, stripe_catalog):
    """A company with a Stripe customer on the fake and a billing profile."""
    from tests.factories.billing import BillingProfileFactory

    customer = fake_stripe.create_customer(email="billing@acme.com")
    fake_stripe.create_meter("ai_credit")
    BillingProfileFactory(company=company, stripe_customer_id=customer["id"])
    return company
