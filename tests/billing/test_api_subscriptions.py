"""POST /billing/claim-checkout, /billing/link-subscription, GET /billing/status:
against the fake Stripe server over real HTTP."""

from __future__ import annotations

import pytest

from billing.models import BillingProfile, Subscription
from tests.billing.conftest import access_of, completed_checkout, open_checkout

pytestmark = pytest.mark.django_db


def claim(api, company, session_id):
    return api.post(
        "/api/v1/billing/claim-checkout",
        {"companyId": str(company.pk), "checkoutSessionId": session_id},
        format="json",
    )


class TestClaimCheckout:
    def test_claims_a_completed_session_and_applies_its_tier(self, api, company, stripe_catalog, fake_stripe):
        session = completed_checkout(fake_stripe)

        response = claim(api, company, session["id"])

        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["alreadyClaimed"] is False
        assert body["tierCode"] == "pro"
        assert body["stripeSubscriptionId"] == session["subscription"]
        assert set(body["featuresApplied"]) >= {"ai_credit", "sso"}
        subscription = Subscription.objects.get(pk=body["subscriptionId"])
        assert subscription.company == company
        assert subscription.status == "active"
        assert subscription.checkout_session_id == session["id"]
        assert subscription.current_period_end > subscription.current_period_start
        assert BillingProfile.objects.get(company=company).stripe_customer_id == session["customer"]
        assert access_of(company, stripe_catalog.sso).is_enabled
        assert access_of(company, stripe_catalog.ai_credit).included_quantity == 1000

    def test_same_company_again_is_already_claimed_and_changes_nothing(self, api, company, stripe_catalog, fake_stripe):
        session = completed_checkout(fake_stripe)
        first = claim(api, company, session["id"]).json()
        requests_before = fake_stripe.request_count()

        second = claim(api, company, session["id"])

        assert second.status_code == 200
        assert second.json()["alreadyClaimed"] is True
        assert second.json()["subscriptionId"] == first["subscriptionId"]
        assert second.json()["featuresApplied"] == []
        assert Subscription.objects.count() == 1
        assert fake_stripe.request_count() == requests_before  # answered from our own records

    def test_session_claimed_by_another_company_is_409(self, api, company, other_company, stripe_catalog, fake_stripe):
        session = completed_checkout(fake_stripe)
        assert claim(api, company, session["id"]).status_code == 201

        response = claim(api, other_company, session["id"])

        assert response.status_code == 409
        assert response.json()["error"]["code"] == "CONFLICT"
        assert Subscription.objects.get().company == company

    def test_unknown_session_is_404(self, api, company, stripe_catalog, fake_stripe):
        # SPEC §2: an id in a body that names nothing visible to the key is a 404.
        response = claim(api, company, "cs_test_does_not_exist")

        assert response.status_code == 404
        assert "Unknown checkout session" in response.json()["error"]["message"]
        assert response.json()["error"]["details"] == {"field": "checkoutSessionId"}

    def test_open_session_is_400_not_complete(self, api, company, stripe_catalog, fake_stripe):
        session = open_checkout(fake_stripe)

        response = claim(api, company, session["id"])

        assert response.status_code == 400
        assert "not complete" in response.json()["error"]["message"]
        assert not Subscription.objects.exists()

    def test_expired_session_is_400(self, api, company, stripe_catalog, fake_stripe):
        session = open_checkout(fake_stripe)
        fake_stripe.expire_checkout_session(session["id"])

        response = claim(api, company, session["id"])

        assert response.status_code == 400
        assert "expired" in response.json()["error"]["message"]

    def test_company_of_another_product_is_404(self, other_api, company, stripe_catalog, fake_stripe):
        session = completed_checkout(fake_stripe)

        response = claim(other_api, company, session["id"])

        assert response.status_code == 404
        assert not Subscription.objects.exists()

    def test_stripe_unreachable_is_503_and_changes_nothing(self, api, company, stripe_catalog, fake_stripe):
        session = completed_checkout(fake_stripe)
        fake_stripe.fail_next(5, status=500)

        response = claim(api, company, session["id"])

        assert response.status_code == 503
        assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert not Subscription.objects.exists()

    def test_stripe_hanging_past_the_timeout_is_503(self, api, company, stripe_catalog, fake_stripe, settings):
        settings.STRIPE_TIMEOUT_SECONDS = 0.5
        session = completed_checkout(fake_stripe)
        fake_stripe.hang_next(1, seconds=3)

        response = claim(api, company, session["id"])

        assert response.status_code == 503

    def test_without_stripe_key_is_503_saying_so(self, api, company, catalog, stripe_unconfigured):
        response = claim(api, company, "cs_test_whatever")

        assert response.status_code == 503
        assert "STRIPE_API_KEY" in response.json()["error"]["message"]

    def test_missing_fields_are_400(self, api, company):
        response = api.post("/api/v1/billing/claim-checkout", {"companyId": str(company.pk)}, format="json")

        assert response.status_code == 400
        assert "checkoutSessionId" in response.json()["error"]["details"]["fields"]


def link(api, company, subscription_id, **extra):
    return api.post(
        "/api/v1/billing/link-subscription",
        {"companyId": str(company.pk), "stripeSubscriptionId": subscription_id, **extra},
        format="json",
    )


class TestLinkSubscription:
    def test_links_and_reads_the_customer_from_stripe(self, api, company, stripe_catalog, fake_stripe):
        customer = fake_stripe.create_customer(email="billing@acme.com")
        subscription = fake_stripe.create_subscription(customer["id"], ["price_ent_base", "price_ai"])

        response = link(api, company, subscription["id"], displayName="Acme Enterprise")

        assert response.status_code == 201, response.json()
        assert response.json()["alreadyLinked"] is False
        local = Subscription.objects.get(pk=response.json()["subscriptionId"])
        assert local.tier.code == "enterprise"
        assert local.display_name == "Acme Enterprise"
        assert local.stripe_customer_id == customer["id"]
        assert company.billing_profiles.get().stripe_customer_id == customer["id"]
        assert access_of(company, stripe_catalog.ai_credit).included_quantity == 10000

    def test_tier_code_overrides_the_prices(self, api, company, stripe_catalog, fake_stripe):
        customer = fake_stripe.create_customer()
        subscription = fake_stripe.create_subscription(customer["id"], ["price_other"])

        response = link(api, company, subscription["id"], tierCode="pro")

        assert response.status_code == 201
        assert Subscription.objects.get().tier.code == "pro"

    def test_tier_from_subscription_metadata(self, api, company, stripe_catalog, fake_stripe):
        customer = fake_stripe.create_customer()
        subscription = fake_stripe.create_subscription(customer["id"], ["price_other"], metadata={"tier_code": "enterprise"})

        assert link(api, company, subscription["id"]).status_code == 201
        assert Subscription.objects.get().tier.code == "enterprise"

    def test_linking_twice_is_already_linked(self, api, company, stripe_catalog, fake_stripe):
        customer = fake_stripe.create_customer()
        subscription = fake_stripe.create_subscription(customer["id"], ["price_pro_base"])
        first = link(api, company, subscription["id"]).json()

        second = link(api, company, subscription["id"])

        assert second.status_code == 200
        assert second.json() == {**first, "alreadyLinked": True, "featuresApplied": []}

    def test_subscription_of_another_company_is_409(self, api, company, other_company, stripe_catalog, fake_stripe):
        customer = fake_stripe.create_customer()
        subscription = fake_stripe.create_subscription(customer["id"], ["price_pro_base"])
        assert link(api, company, subscription["id"]).status_code == 201

        assert link(api, other_company, subscription["id"]).status_code == 409

    def test_customer_mismatch_is_400(self, api, company, stripe_catalog, fake_stripe):
        customer = fake_stripe.create_customer()
        subscription = fake_stripe.create_subscription(customer["id"], ["price_pro_base"])

        response = link(api, company, subscription["id"], stripeCustomerId="cus_someone_else")

        assert response.status_code == 400
        assert "stripeCustomerId" in response.json()["error"]["details"]["fields"]

    def test_unknown_subscription_is_404(self, api, company, stripe_catalog, fake_stripe):
        response = link(api, company, "sub_nope")

        assert response.status_code == 404
        assert "Unknown Stripe subscription" in response.json()["error"]["message"]

    def test_unknown_tier_code_is_404(self, api, company, stripe_catalog, fake_stripe):
        response = link(api, company, "sub_whatever", tierCode="platinum")

        assert response.status_code == 404
        assert response.json()["error"]["details"] == {"tierCode": "platinum"}

    def test_tier_of_another_product_is_unknown(self, api, other_api, company, other_product, stripe_catalog, fake_stripe):
        from entitlements.models import Tier

        Tier.objects.create(product=other_product, code="crm-gold", name="Gold")
        response = link(api, company, "sub_whatever", tierCode="crm-gold")

        assert response.status_code == 404

    def test_stripe_unreachable_is_503(self, api, company, stripe_catalog, fake_stripe):
        fake_stripe.fail_next(3, status=503)

        assert link(api, company, "sub_whatever").status_code == 503


class TestBillingStatus:
    def test_company_without_billing(self, api, company, catalog):
        response = api.get(f"/api/v1/billing/status/{company.pk}")

        assert response.status_code == 200
        assert response.json() == {
            "companyId": str(company.pk),
            "hasBillingProfile": False,
            "stripeCustomerId": None,
            "activeSubscriptions": [],
            "enabledFeaturesCount": 0,
        }

    def test_company_with_a_subscription(self, api, company, stripe_catalog, fake_stripe):
        session = completed_checkout(fake_stripe)
        subscription_id = claim(api, company, session["id"]).json()["subscriptionId"]

        body = api.get(f"/api/v1/billing/status/{company.pk}").json()

        assert body["hasBillingProfile"] is True
        assert body["stripeCustomerId"] == session["customer"]
        assert body["enabledFeaturesCount"] == 2
        [active] = body["activeSubscriptions"]
        assert active["id"] == subscription_id
        assert active["status"] == "active"
        assert active["tier"] == {"code": "pro", "name": "Pro"}
        assert active["currentPeriodEnd"].endswith("Z")

    def test_tenant_isolation_both_directions(self, api, other_api, company, other_product, catalog):
        from tests.factories.companies import CompanyFactory, ProductLinkFactory

        theirs = CompanyFactory()
        ProductLinkFactory(product=other_product, company=theirs)

        assert other_api.get(f"/api/v1/billing/status/{company.pk}").status_code == 404
        assert api.get(f"/api/v1/billing/status/{theirs.pk}").status_code == 404
        assert api.get("/api/v1/billing/status/not-a-uuid").status_code == 404

    def test_needs_an_api_key(self, client, company):
        assert client.get(f"/api/v1/billing/status/{company.pk}").status_code == 401

    def test_other_products_subscriptions_are_not_shown(self, api, other_api, company, other_product, stripe_catalog, fake_stripe):
        from tests.factories.billing import SubscriptionFactory
        from tests.factories.companies import ProductLinkFactory

        ProductLinkFactory(product=other_product, company=company)
        SubscriptionFactory(company=company, product=other_product)

        assert api.get(f"/api/v1/billing/status/{company.pk}").json()["activeSubscriptions"] == []
        assert len(other_api.get(f"/api/v1/billing/status/{company.pk}").json()["activeSubscriptions"]) == 1


def test_a_key_stripe_refuses_is_503_without_leaking_it(api, company, stripe_catalog, fake_stripe, settings, caplog):
    settings.STRIPE_API_KEY = "bad_key_very_secret_value"
    caplog.set_level("DEBUG")

    response = claim(api, company, "cs_test_whatever")

    assert response.status_code == 503
    assert "STRIPE_API_KEY" in response.json()["error"]["message"]
    assert "very_secret" not in response.content.decode()
    assert "very_secret" not in caplog.text
