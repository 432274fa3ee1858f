"""Billing admin actions through Stripe (the fake, over real HTTP): subscribe a
company, change tier, cancel, resume — same services as the API, a
confirmation form with a reason, the Billing admin role only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from billing.models import BillingProfile, Subscription
from tests.billing.conftest import access_of
from tests.billing.test_api_money_flows import add_card, subscribe

pytestmark = pytest.mark.django_db


def client_with_role(role: str) -> Client:
    user = User.objects.create_user(role.lower().replace(" ", "_"), "s@example.com", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def billing_admin():
    return client_with_role("Billing admin")


def run_action(client, url, action, objects, **form):
    return client.post(url, {"action": action, "_selected_action": [str(o.pk) for o in objects], "apply": "yes", **form},
                       follow=True)


@pytest.fixture
def subscription(api, company, fake_stripe, stripe_catalog):
    add_card(api, fake_stripe, company)
    return Subscription.objects.get(pk=subscribe(api, company).json()["id"])


def test_confirmation_page_then_change_tier(billing_admin, fake_stripe, stripe_catalog, subscription):
    url = "/admin/billing/subscription/"
    page = billing_admin.post(url, {"action": "change_tier", "_selected_action": [str(subscription.pk)]})
    assert page.status_code == 200 and b"billing-subscription-form" in page.content and b"reason" in page.content

    response = run_action(billing_admin, url, "change_tier", [subscription], tier=str(stripe_catalog.enterprise.pk),
                          proration_behavior="none", reason="Upgrade agreed on the phone")

    assert b"now enterprise" in response.content
    subscription.refresh_from_db()
    assert subscription.tier.code == "enterprise"
    stripe_sub = fake_stripe.get(subscription.stripe_subscription_id)
    assert "price_ent_base" in [i["price"]["id"] for i in stripe_sub["items"]["data"]]


def test_cancel_then_resume(billing_admin, company, fake_stripe, stripe_catalog, subscription):
    url = "/admin/billing/subscription/"
    run_action(billing_admin, url, "cancel", [subscription], at_period_end="on", reason="Asked by email")
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is True

    response = run_action(billing_admin, url, "resume", [subscription], reason="Changed their mind")
    assert b"will renew again" in response.content
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is False

    run_action(billing_admin, url, "cancel", [subscription], reason="Closed")  # unticked: now
    subscription.refresh_from_db()
    assert subscription.status == "canceled" and not access_of(company, stripe_catalog.sso).is_enabled


def test_support_may_not(company, fake_stripe, stripe_catalog, subscription):
    support = client_with_role("Support")
    response = run_action(support, "/admin/billing/subscription/", "cancel", [subscription], reason="x")
    assert response.status_code in (200, 403)
    subscription.refresh_from_db()
    assert subscription.status == "active" and subscription.cancel_at_period_end is False


def test_subscribe_company_from_the_admin(billing_admin, api, company, fake_stripe, stripe_catalog):
    add_card(api, fake_stripe, company)
    form = {"tier": str(stripe_catalog.pro.pk), "reason": "Signed contract", "idempotency_key": "a" * 32}

    first = run_action(billing_admin, "/admin/companies/company/", "billing_subscribe", [company], **form)
    run_action(billing_admin, "/admin/companies/company/", "billing_subscribe", [company], **form)  # double submit

    assert b"subscribed to pro" in first.content
    assert Subscription.objects.get(company=company).tier.code == "pro"
    assert len(fake_stripe.subscriptions) == 1


def test_declined_card_shows_on_the_form(billing_admin, api, company, fake_stripe, stripe_catalog):
    add_card(api, fake_stripe, company, "pm_card_chargeCustomerFail")

    response = run_action(billing_admin, "/admin/companies/company/", "billing_subscribe", [company],
                          tier=str(stripe_catalog.pro.pk), reason="Contract", idempotency_key="b" * 32)

    assert response.status_code == 200 and b"declined" in response.content
    assert not Subscription.objects.exists()


def test_create_stripe_customer_from_the_admin(billing_admin, company, product, fake_stripe):
    response = run_action(billing_admin, "/admin/companies/company/", "billing_create_customer", [company],
                          product=str(product.pk), email="ap@acme.com")

    assert b"created Stripe customer" in response.content
    customer = fake_stripe.customers[0]
    assert customer["email"] == "ap@acme.com"
    assert BillingProfile.objects.get(company=company, product=product).stripe_customer_id == customer["id"]
    again = run_action(billing_admin, "/admin/companies/company/", "billing_create_customer", [company],
                       product=str(product.pk))
    assert b"already had Stripe customer" in again.content and len(fake_stripe.customers) == 1


def test_cards_on_the_company_page_and_managed_by_billing_admins(billing_admin, api, company, fake_stripe):
    visa = add_card(api, fake_stripe, company)
    mastercard = add_card(api, fake_stripe, company, "pm_card_mastercard", default=False)
    profile = BillingProfile.objects.get(company=company)

    page = billing_admin.get(f"/admin/companies/company/{company.pk}/change/")
    assert b"billing-cards-panel" in page.content and b"4242" in page.content and b"4444" in page.content

    cards_url = f"/admin/billing/billingprofile/{profile.pk}/cards/"
    billing_admin.post(cards_url, {"op": "default", "payment_method": mastercard})
    assert fake_stripe.get(profile.stripe_customer_id)["invoice_settings"]["default_payment_method"] == mastercard
    response = billing_admin.post(cards_url, {"op": "detach", "payment_method": visa}, follow=True)
    assert b"was removed" in response.content and fake_stripe.get(visa)["customer"] is None

    support = client_with_role("Support")
    assert support.get(cards_url).status_code == 200
    assert support.post(cards_url, {"op": "detach", "payment_method": mastercard}).status_code == 403
    assert fake_stripe.get(mastercard)["customer"] == profile.stripe_customer_id


def test_cards_panel_survives_stripe_down(billing_admin, api, company, fake_stripe):
    add_card(api, fake_stripe, company)
    fake_stripe.fail_next(5, status=500)
    page = billing_admin.get(f"/admin/companies/company/{company.pk}/change/")
    assert page.status_code == 200 and b"unreachable" in page.content
