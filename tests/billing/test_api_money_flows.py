"""Customers, cards and subscriptions managed from SaaSDesk (SPEC §6), end to
end against the fake Stripe over real HTTP: POST /billing/customers,
/billing/setup-intents, /billing/payment-methods(+default, DELETE),
/billing/subscriptions (+change, cancel, resume, list, one)."""

from __future__ import annotations

import time

import pytest

from billing.models import BillingProfile, Subscription
from tests.billing.conftest import access_of
from tests.billing.test_webhooks import last_event, post_event

pytestmark = pytest.mark.django_db

API = "/api/v1/billing"


def ensure_customer(api, company, **body):
    return api.post(f"{API}/customers", {"companyId": str(company.pk), **body}, format="json")


def add_card(api, fake, company, card="pm_card_visa", default=True) -> str:
    """What a product does: a SetupIntent, confirmed by Stripe.js with a card."""
    intent = api.post(f"{API}/setup-intents", {"companyId": str(company.pk)}, format="json").json()
    payment_method = fake.confirm_setup_intent(intent["setupIntentId"], card)["payment_method"]
    if default:
        response = api.post(f"{API}/payment-methods/default",
                            {"companyId": str(company.pk), "paymentMethodId": payment_method}, format="json")
        assert response.status_code == 200, response.json()
    return payment_method


def subscribe(api, company, tier="pro", key="idem-1", **body):
    return api.post(f"{API}/subscriptions", {"companyId": str(company.pk), "tierCode": tier, **body},
                    format="json", HTTP_IDEMPOTENCY_KEY=key)


class TestCustomers:
    def test_created_once_then_returned(self, api, company, fake_stripe):
        first = ensure_customer(api, company, email="billing@acme.com")
        again = ensure_customer(api, company)

        assert first.status_code == 201 and first.json()["created"] is True
        assert again.status_code == 200 and again.json() == {**first.json(), "created": False}
        customer = fake_stripe.get(first.json()["stripeCustomerId"])
        assert (customer["email"], customer["name"]) == ("billing@acme.com", "Acme Inc")
        assert customer["metadata"] == {"company_id": str(company.pk), "product": "chat"}
        assert BillingProfile.objects.get(company=company).stripe_customer_id == customer["id"]

    def test_stripe_down_is_503_and_nothing_is_linked(self, api, company, fake_stripe):
        fake_stripe.fail_next(1, status=500, paths="/v1/customers")

        response = ensure_customer(api, company)

        assert response.status_code == 503
        assert not BillingProfile.objects.exists() and fake_stripe.customers == []

    def test_a_timed_out_create_is_not_made_twice(self, api, company, fake_stripe, settings):
        settings.STRIPE_TIMEOUT_SECONDS = 0.3
        fake_stripe.hang_next(1, seconds=0.6, paths="/v1/customers", then="process")  # Stripe did it

        assert ensure_customer(api, company).status_code == 503
        retry = ensure_customer(api, company)

        assert retry.status_code == 201
        assert [c["id"] for c in fake_stripe.customers] == [retry.json()["stripeCustomerId"]]

    def test_unknown_company_is_404_and_bad_input_400(self, api, fake_stripe):
        assert api.post(f"{API}/customers", {"companyId": "00000000-0000-0000-0000-000000000000"},
                        format="json").status_code == 404
        bad = api.post(f"{API}/customers", {"companyId": "nope", "email": "x"}, format="json")
        assert bad.status_code == 400 and set(bad.json()["error"]["details"]["fields"]) == {"companyId", "email"}


class TestCards:
    def test_setup_intent_list_default_detach(self, api, company, fake_stripe):
        intent = api.post(f"{API}/setup-intents", {"companyId": str(company.pk)}, format="json")
        assert intent.status_code == 201
        assert intent.json()["clientSecret"].startswith(intent.json()["setupIntentId"] + "_secret_")
        assert BillingProfile.objects.filter(company=company).exists()  # the customer came with it

        visa = fake_stripe.confirm_setup_intent(intent.json()["setupIntentId"], "pm_card_visa")["payment_method"]
        mastercard = add_card(api, fake_stripe, company, "pm_card_mastercard", default=False)
        listed = api.get(f"{API}/payment-methods", {"companyId": str(company.pk)}).json()["data"]
        assert {(m["id"], m["brand"], m["last4"], m["isDefault"]) for m in listed} == {
            (visa, "visa", "4242", False), (mastercard, "mastercard", "4444", False)}
        first = api.get(f"{API}/payment-methods", {"companyId": str(company.pk), "limit": 1}).json()
        assert first["hasMore"] is True and len(first["data"]) == 1
        second = api.get(f"{API}/payment-methods", {"companyId": str(company.pk), "limit": 1,
                                                     "cursor": first["nextCursor"]}).json()
        assert {first["data"][0]["id"], second["data"][0]["id"]} == {visa, mastercard} and second["hasMore"] is False

        made_default = api.post(f"{API}/payment-methods/default",
                                {"companyId": str(company.pk), "paymentMethodId": visa}, format="json")
        assert made_default.status_code == 200 and made_default.json()["isDefault"] is True
        listed = api.get(f"{API}/payment-methods", {"companyId": str(company.pk)}).json()["data"]
        assert [m["id"] for m in listed if m["isDefault"]] == [visa]

        removed = api.delete(f"{API}/payment-methods/{visa}?companyId={company.pk}")
        assert removed.status_code == 204
        listed = api.get(f"{API}/payment-methods", {"companyId": str(company.pk)}).json()["data"]
        assert [m["id"] for m in listed] == [mastercard] and not listed[0]["isDefault"]

    def test_another_customers_card_is_unknown(self, api, company, other_company, fake_stripe):
        theirs = add_card(api, fake_stripe, other_company)
        ensure_customer(api, company)

        default = api.post(f"{API}/payment-methods/default",
                           {"companyId": str(company.pk), "paymentMethodId": theirs}, format="json")
        # SPEC §2: an id in a body that names nothing visible to the key is a 404.
        assert default.status_code == 404 and default.json()["error"]["details"] == {"field": "paymentMethodId"}
        assert api.delete(f"{API}/payment-methods/{theirs}?companyId={company.pk}").status_code == 404
        assert api.delete(f"{API}/payment-methods/pm_missing?companyId={company.pk}").status_code == 404
        assert fake_stripe.get(theirs)["customer"] is not None

    def test_no_customer_yet(self, api, company, fake_stripe):
        assert api.get(f"{API}/payment-methods", {"companyId": str(company.pk)}).json()["data"] == []
        assert api.get(f"{API}/payment-methods").status_code == 400

    def test_a_declining_card_never_becomes_a_payment_method(self, api, company, fake_stripe):
        intent = api.post(f"{API}/setup-intents", {"companyId": str(company.pk)}, format="json").json()
        with pytest.raises(Exception):  # Stripe.js shows the decline in the product's page
            fake_stripe.confirm_setup_intent(intent["setupIntentId"], "pm_card_chargeDeclinedInsufficientFunds")
        assert api.get(f"{API}/payment-methods", {"companyId": str(company.pk)}).json()["data"] == []


class TestSubscriptionCreate:
    def test_creates_from_the_tier_prices_links_and_applies(self, api, company, fake_stripe, stripe_catalog):
        add_card(api, fake_stripe, company)

        response = subscribe(api, company)

        assert response.status_code == 201, response.json()
        body = response.json()
        assert (body["status"], body["tierCode"], body["cancelAtPeriodEnd"]) == ("active", "pro", False)
        stripe_sub = fake_stripe.get(body["stripeSubscriptionId"])
        assert [i["price"]["id"] for i in stripe_sub["items"]["data"]] == ["price_pro_base", "price_ai"]
        assert stripe_sub["metadata"]["tier_code"] == "pro"
        assert fake_stripe.get(stripe_sub["latest_invoice"])["amount_paid"] == 4900
        assert access_of(company, stripe_catalog.sso).is_enabled
        assert Subscription.objects.get().stripe_subscription_id == body["stripeSubscriptionId"]

    def test_same_idempotency_key_same_subscription(self, api, company, fake_stripe, stripe_catalog):
        add_card(api, fake_stripe, company)
        first = subscribe(api, company, key="k-42")
        again = subscribe(api, company, key="k-42")

        assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
        assert len(fake_stripe.subscriptions) == 1 and Subscription.objects.count() == 1
        other_tier = subscribe(api, company, tier="enterprise", key="k-42")
        assert other_tier.status_code == 409

    def test_idempotency_key_is_required(self, api, company, fake_stripe, stripe_catalog):
        response = api.post(f"{API}/subscriptions", {"companyId": str(company.pk), "tierCode": "pro"}, format="json")
        assert response.status_code == 400 and "Idempotency-Key" in response.json()["error"]["details"]["fields"]

    def test_declined_card_is_402_and_nothing_is_made(self, api, company, fake_stripe, stripe_catalog):
        add_card(api, fake_stripe, company, "pm_card_chargeCustomerFail")

        response = subscribe(api, company)

        assert response.status_code == 402
        assert response.json()["error"]["details"] == {"declineCode": "generic_decline", "code": "card_declined"}
        assert fake_stripe.subscriptions == [] and not Subscription.objects.exists()
        assert not access_of(company, stripe_catalog.sso)

    def test_insufficient_funds_on_an_explicit_card(self, api, company, fake_stripe, stripe_catalog):
        add_card(api, fake_stripe, company)
        fake_stripe.fail_next_payments(1, decline_code="insufficient_funds")

        response = subscribe(api, company)

        assert response.status_code == 402 and response.json()["error"]["details"]["declineCode"] == "insufficient_funds"
        assert not Subscription.objects.exists()

    def test_without_a_card(self, api, company, fake_stripe, stripe_catalog):
        response = subscribe(api, company)
        # Valid input, but the company's billing state is not ready for it: 409 with Stripe's message.
        assert response.status_code == 409 and not Subscription.objects.exists()

    def test_trial_needs_no_card(self, api, company, fake_stripe, stripe_catalog):
        response = subscribe(api, company, trialPeriodDays=14)

        assert response.status_code == 201 and response.json()["status"] == "trialing"
        assert response.json()["trialEnd"] == response.json()["currentPeriodEnd"]

    def test_stripe_down_is_503_and_nothing_half_made(self, api, company, fake_stripe, stripe_catalog):
        add_card(api, fake_stripe, company)
        fake_stripe.fail_next(1, status=503, paths="/v1/subscriptions")

        assert subscribe(api, company).status_code == 503
        assert not Subscription.objects.exists() and fake_stripe.subscriptions == []
        assert subscribe(api, company).status_code == 201  # the retry works

    def test_unknown_tier_or_card(self, api, company, fake_stripe, stripe_catalog):
        add_card(api, fake_stripe, company)
        assert subscribe(api, company, tier="gold").status_code == 404
        assert subscribe(api, company, tier="free").status_code == 409  # no Stripe prices
        response = subscribe(api, company, paymentMethodId="pm_nope")
        assert response.status_code == 404 and response.json()["error"]["details"] == {"field": "paymentMethodId"}


class TestSubscriptionLifecycle:
    @pytest.fixture
    def subscription(self, api, company, fake_stripe, stripe_catalog):
        add_card(api, fake_stripe, company)
        return subscribe(api, company).json()

    def test_change_tier_with_proration(self, api, company, fake_stripe, stripe_catalog, subscription):
        response = api.post(f"{API}/subscriptions/{subscription['id']}/change",
                            {"tierCode": "enterprise", "prorationBehavior": "always_invoice"}, format="json")

        assert response.status_code == 200 and response.json()["tierCode"] == "enterprise"
        stripe_sub = fake_stripe.get(subscription["stripeSubscriptionId"])
        assert sorted(i["price"]["id"] for i in stripe_sub["items"]["data"]) == ["price_ai", "price_ent_base"]
        invoice = fake_stripe.get(stripe_sub["latest_invoice"])
        assert invoice["billing_reason"] == "subscription_update" and invoice["total"] > 0
        assert Subscription.objects.get().tier.code == "enterprise"

    def test_change_errors(self, api, company, fake_stripe, stripe_catalog, subscription):
        url = f"{API}/subscriptions/{subscription['id']}/change"
        assert api.post(url, {"tierCode": "gold"}, format="json").status_code == 404
        assert api.post(url, {"tierCode": "enterprise", "prorationBehavior": "later"}, format="json").status_code == 400
        fake_stripe.fail_next(1, status=500, paths="/v1/subscriptions")
        assert api.post(url, {"tierCode": "enterprise"}, format="json").status_code == 503
        assert Subscription.objects.get().tier.code == "pro"

    def test_cancel_at_period_end_then_resume(self, api, company, fake_stripe, stripe_catalog, subscription):
        base = f"{API}/subscriptions/{subscription['id']}"
        canceled = api.post(f"{base}/cancel", {"reason": "Budget cuts"}, format="json")
        assert canceled.status_code == 200
        assert (canceled.json()["cancelAtPeriodEnd"], canceled.json()["status"]) == (True, "active")
        assert fake_stripe.get(subscription["stripeSubscriptionId"])["cancellation_details"]["comment"] == "Budget cuts"
        assert access_of(company, stripe_catalog.sso).is_enabled  # until the period ends

        resumed = api.post(f"{base}/resume", format="json")
        assert resumed.status_code == 200 and resumed.json()["cancelAtPeriodEnd"] is False
        assert api.post(f"{base}/resume", format="json").status_code == 409

    def test_cancel_now_falls_back_to_the_default_tier(self, api, company, fake_stripe, stripe_catalog, subscription):
        base = f"{API}/subscriptions/{subscription['id']}"
        response = api.post(f"{base}/cancel", {"atPeriodEnd": False, "reason": "Closed the account"}, format="json")

        assert response.status_code == 200 and response.json()["status"] == "canceled"
        assert response.json()["canceledAt"] is not None
        assert not access_of(company, stripe_catalog.sso).is_enabled
        assert api.post(f"{base}/cancel", {"reason": "again"}, format="json").status_code == 409
        assert api.post(f"{base}/cancel", {}, format="json").status_code == 400  # reason is required

    def test_list_and_get(self, api, other_api, company, fake_stripe, stripe_catalog, subscription):
        listed = api.get(f"{API}/subscriptions", {"companyId": str(company.pk)}).json()
        assert [s["id"] for s in listed["data"]] == [subscription["id"]] and listed["hasMore"] is False
        one = api.get(f"{API}/subscriptions/{subscription['id']}")
        assert one.status_code == 200 and one.json() == listed["data"][0]
        assert other_api.get(f"{API}/subscriptions/{subscription['id']}").status_code == 404
        assert other_api.post(f"{API}/subscriptions/{subscription['id']}/resume").status_code == 404


def wait_until(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class TestLostAnswers:
    def test_created_at_stripe_but_answer_lost_is_linked_by_the_webhook(self, api, client, company, fake_stripe,
                                                                        stripe_catalog, settings):
        add_card(api, fake_stripe, company)
        settings.STRIPE_TIMEOUT_SECONDS = 0.3
        fake_stripe.hang_next(1, seconds=0.6, paths="/v1/subscriptions", then="process")

        assert subscribe(api, company).status_code == 503
        assert not Subscription.objects.exists()
        wait_until(lambda: fake_stripe.subscriptions)  # Stripe finishes it after the client gave up

        response = post_event(client, fake_stripe, last_event(fake_stripe, "customer.subscription.created"))

        assert response.status_code == 200
        linked = Subscription.objects.get()
        assert (linked.company, linked.tier.code) == (company, "pro")
        assert access_of(company, stripe_catalog.sso).is_enabled

    def test_created_at_stripe_but_answer_lost_is_returned_by_the_retry(self, api, company, fake_stripe,
                                                                        stripe_catalog, settings):
        add_card(api, fake_stripe, company)
        settings.STRIPE_TIMEOUT_SECONDS = 0.3
        fake_stripe.hang_next(1, seconds=0.6, paths="/v1/subscriptions", then="process")
        assert subscribe(api, company, key="retry-me").status_code == 503
        wait_until(lambda: fake_stripe.subscriptions)

        retry = subscribe(api, company, key="retry-me")

        assert retry.status_code == 201
        assert [s["id"] for s in fake_stripe.subscriptions] == [retry.json()["stripeSubscriptionId"]]


class TestPerProductAccounts:
    def test_each_product_has_its_own_customer_and_cards(self, api, other_api, company, other_product, fake_stripe):
        from tests.factories.companies import ProductLinkFactory

        ProductLinkFactory(product=other_product, company=company, external_org_id="crm_acme")
        chat = ensure_customer(api, company).json()["stripeCustomerId"]
        crm = ensure_customer(other_api, company).json()["stripeCustomerId"]
        assert chat != crm and fake_stripe.get(crm)["metadata"]["product"] == "crm"

        card = add_card(api, fake_stripe, company)
        assert [m["id"] for m in api.get(f"{API}/payment-methods", {"companyId": str(company.pk)}).json()["data"]] == [card]
        assert other_api.get(f"{API}/payment-methods", {"companyId": str(company.pk)}).json()["data"] == []
        assert other_api.delete(f"{API}/payment-methods/{card}?companyId={company.pk}").status_code == 404
