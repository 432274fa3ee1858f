"""Billing is per account (SPEC §2): one Stripe customer per company ×
product, `/billing/status` shows only the key's product, and no answer or
error carries another product's ids (issue 8 item 1)."""

import pytest

from companies.services import product_customer_pool_set
from tests.factories.billing import BillingProfileFactory, SubscriptionFactory
from tests.factories.companies import ProductLinkFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shared(product, other_product, company):
    """`company` in one pool with both products, billed by the other one."""
    for each in (product, other_product):
        product_customer_pool_set(product=each, customer_pool="acme-customers")
    ProductLinkFactory(product=other_product, company=company, external_org_id="crm_acme")
    profile = BillingProfileFactory(company=company, product=other_product, stripe_customer_id="cus_THEIRS")
    subscription = SubscriptionFactory(
        company=company, product=other_product, stripe_subscription_id="sub_THEIRS", stripe_customer_id="cus_THEIRS"
    )
    return profile, subscription


def _leaks(response, *values) -> list[str]:
    text = response.content.decode()
    return [value for value in values if value in text]


def test_status_shows_only_the_keys_own_account(api, other_api, company, shared, catalog):
    profile, subscription = shared
    mine = api.get(f"/api/v1/billing/status/{company.pk}")
    assert mine.status_code == 200
    assert (mine.json()["hasBillingProfile"], mine.json()["stripeCustomerId"], mine.json()["activeSubscriptions"]) == (
        False, None, []
    )
    assert _leaks(mine, "cus_THEIRS", "sub_THEIRS", str(subscription.pk)) == []
    theirs = other_api.get(f"/api/v1/billing/status/{company.pk}").json()
    assert theirs["stripeCustomerId"] == "cus_THEIRS"


def test_a_refused_link_subscription_names_nothing_of_the_other_product(api, company, shared, stripe_catalog, fake_stripe):
    _, subscription = shared
    # Their Stripe subscription: already linked to their account.
    response = api.post(
        "/api/v1/billing/link-subscription",
        {"companyId": str(company.pk), "stripeSubscriptionId": "sub_THEIRS"},
        format="json",
    )
    assert response.status_code == 409
    assert _leaks(response, "cus_THEIRS", str(subscription.pk)) == []
    # A new subscription of their Stripe customer: the customer bills their account.
    customer = fake_stripe.create_customer(email="billing@acme.com")
    from billing.models import BillingProfile

    BillingProfile.objects.filter(stripe_customer_id="cus_THEIRS").update(stripe_customer_id=customer["id"])
    stripe_subscription = fake_stripe.create_subscription(customer["id"], ["price_pro_base"])
    response = api.post(
        "/api/v1/billing/link-subscription",
        {"companyId": str(company.pk), "stripeSubscriptionId": stripe_subscription["id"]},
        format="json",
    )
    assert response.status_code == 409, response.content
    assert "details" not in response.json()["error"] or customer["id"] not in str(response.json()["error"]["details"])
    assert _leaks(response, str(subscription.pk), "crm_acme") == []


def test_each_account_gets_its_own_stripe_customer(api, company, shared, stripe_catalog, fake_stripe):
    customer = fake_stripe.create_customer(email="chat@acme.com")
    stripe_subscription = fake_stripe.create_subscription(customer["id"], ["price_pro_base"])
    response = api.post(
        "/api/v1/billing/link-subscription",
        {"companyId": str(company.pk), "stripeSubscriptionId": stripe_subscription["id"]},
        format="json",
    )
    assert response.status_code in (200, 201), response.content
    assert sorted(company.billing_profiles.values_list("product__code", "stripe_customer_id")) == sorted(
        [("chat", customer["id"]), ("crm", "cus_THEIRS")]
    )
    assert api.get(f"/api/v1/billing/status/{company.pk}").json()["stripeCustomerId"] == customer["id"]
