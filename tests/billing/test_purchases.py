"""Credit purchases (SPEC §7) end to end against the fake Stripe over real
HTTP: POST /credits/purchases, the payment_intent / charge.refunded /
charge.dispute webhooks in any order, refunds from the admin."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from billing.models import CreditPurchase, PurchaseStatus
from billing.services.purchases import purchase_sync_by_intent_id, reversal_credits
from credits.models import EntryKind, LedgerEntry, Wallet
from credits.services import credits_debit
from credits.verify import credits_verify
from notifications.models import Event
from tests.billing.test_admin_money_actions import client_with_role, run_action
from tests.billing.test_api_money_flows import add_card, ensure_customer
from tests.billing.test_webhooks import post_event

pytestmark = pytest.mark.django_db

URL = "/api/v1/credits/purchases"


def buy(api, company, key="buy-1", credits=100, amount=1000, currency="eur", **body):
    return api.post(URL, {"companyId": str(company.pk), "credits": credits, "amount": amount, "currency": currency,
                          **body}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def wallet_of(company):
    return Wallet.objects.filter(company=company).first()


def total(company) -> int:
    wallet = wallet_of(company)
    return wallet.total if wallet else 0


def metadata_intent(fake, company, product, *, credits=100, amount=1000, card="pm_card_visa", confirm=True):
    """A purchase PaymentIntent made at Stripe whose answer SaaSDesk never saw."""
    customer = fake.create_customer(email="x@example.com")
    pm = fake.attach_payment_method(customer["id"], card)
    return fake.create_payment_intent(
        amount=amount, currency="eur", customer=customer["id"], payment_method=pm["id"], confirm=confirm,
        metadata={"kind": "saasdesk_credit_purchase", "company_id": str(company.pk), "product": product.code,
                  "product_id": str(product.pk), "credits": str(credits), "origin": "api"},
    )


@pytest.fixture
def carded(api, company, fake_stripe):
    ensure_customer(api, company)
    return add_card(api, fake_stripe, company)


class TestBuy:
    def test_default_card_lands_credits_once_with_an_event(self, api, company, product, fake_stripe, carded):
        response = buy(api, company)

        assert response.status_code == 201, response.json()
        body = response.json()
        assert body["status"] == "succeeded" and body["credits"] == 100
        assert total(company) == 100
        intent = fake_stripe.get(body["paymentIntentId"])
        assert intent["status"] == "succeeded" and intent["amount"] == 1000
        event = Event.objects.get(type="credits.purchase_succeeded")
        assert event.data["credits"] == 100 and event.data["purchaseId"] == body["purchaseId"]
        # The webhook of the same success finds it already landed.
        assert post_event(api, fake_stripe, fake_stripe.build_event("payment_intent.succeeded", intent["id"])).status_code == 200
        assert total(company) == 100 and Event.objects.filter(type="credits.purchase_succeeded").count() == 1
        assert credits_verify() == {}

    def test_retry_with_the_key_replays_without_a_second_charge(self, api, company, fake_stripe, carded):
        first = buy(api, company)
        again = buy(api, company)

        assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
        assert again.json()["purchaseId"] == first.json()["purchaseId"]
        assert len(fake_stripe.payment_intents) == 1 and total(company) == 100

    def test_same_key_other_body_is_409(self, api, company, fake_stripe, carded):
        buy(api, company)
        assert buy(api, company, credits=200).status_code == 409

    def test_declined_card_is_402_with_decline_code_and_nothing_granted(self, api, company, fake_stripe):
        ensure_customer(api, company)
        add_card(api, fake_stripe, company, card="pm_card_chargeCustomerFail")

        response = buy(api, company)

        assert response.status_code == 402
        assert response.json()["error"]["details"]["declineCode"] == "generic_decline"
        assert total(company) == 0 and not CreditPurchase.objects.filter(status=PurchaseStatus.SUCCEEDED).exists()
        assert not LedgerEntry.objects.exists()

    def test_without_a_card_the_intent_waits_and_the_webhook_lands_it(self, api, company, fake_stripe):
        response = buy(api, company)

        assert response.status_code == 201 and response.json()["status"] == "pending"
        assert response.json()["clientSecret"]
        intent_id = response.json()["paymentIntentId"]
        # The product confirms with Stripe.js; Stripe tells us by webhook.
        customer = fake_stripe.get(intent_id)["customer"]
        pm = fake_stripe.attach_payment_method(customer, "pm_card_visa")
        fake_stripe.client(api_key="sk_test_x").v1.payment_intents.confirm(intent_id, {"payment_method": pm["id"]})
        post_event(api, fake_stripe, fake_stripe.build_event("payment_intent.succeeded", intent_id))
        assert total(company) == 100
        assert CreditPurchase.objects.get().status == PurchaseStatus.SUCCEEDED

    def test_bad_input_is_400(self, api, company, fake_stripe):
        assert buy(api, company, credits=0).status_code == 400
        assert buy(api, company, currency="euro").status_code == 400
        no_key = api.post(URL, {"companyId": str(company.pk), "credits": 1, "amount": 1, "currency": "eur"}, format="json")
        assert no_key.status_code == 400
        # SPEC §2: an id that names nothing visible to the key is a 404.
        assert buy(api, company, paymentMethodId="pm_unknown").status_code == 404
        assert not CreditPurchase.objects.exists()

    def test_stripe_down_is_503_and_nothing_is_stored(self, api, company, fake_stripe, carded):
        fake_stripe.fail_next(1, status=500, paths="/v1/payment_intents")

        assert buy(api, company).status_code == 503
        assert not CreditPurchase.objects.exists() and total(company) == 0

    def test_frozen_wallet_is_423(self, api, company, product, fake_stripe, carded):
        from credits.services import wallet_freeze, wallet_get_or_create

        wallet_freeze(wallet=wallet_get_or_create(company_id=company.pk, product_id=product.pk), reason="x", actor="t")
        assert buy(api, company).status_code == 423
        assert fake_stripe.payment_intents == []

    def test_list(self, api, company, fake_stripe, carded):
        buy(api, company)
        page = api.get(URL, {"companyId": str(company.pk)}).json()
        assert [p["credits"] for p in page["data"]] == [100] and page["hasMore"] is False


class TestRefunds:
    @pytest.mark.parametrize(("credits", "refunded", "amount", "expected"), [
        (100, 333, 1000, 33), (100, 335, 1000, 34), (100, 1000, 1000, 100), (3, 1, 2, 2), (7, 0, 5, 0),
    ])
    def test_share_is_rounded_half_up(self, credits, refunded, amount, expected):
        assert reversal_credits(credits=credits, refunded=refunded, amount=amount) == expected

    def test_partial_and_repeated_refunds_take_back_the_share(self, api, company, fake_stripe, carded):
        intent_id = buy(api, company).json()["paymentIntentId"]

        for amount, expected_total in ((333, 67), (333, 33), (334, 0)):
            fake_stripe.refund(intent_id, amount)
            event = fake_stripe.build_event("charge.refunded", fake_stripe.get(intent_id)["latest_charge"])
            assert post_event(api, fake_stripe, event).status_code == 200
            assert total(company) == expected_total
        purchase = CreditPurchase.objects.get()
        assert (purchase.amount_refunded, purchase.credits_reversed) == (1000, 100)
        assert LedgerEntry.objects.filter(kind=EntryKind.REVERSAL).count() == 3
        assert credits_verify() == {}

    def test_refund_of_credits_already_spent_becomes_debt(self, api, company, product, fake_stripe, carded):
        intent_id = buy(api, company).json()["paymentIntentId"]
        credits_debit(product_id=product.pk, company_id=company.pk, amount=90, job_id="j", source_service="s")

        fake_stripe.refund(intent_id, 1000)
        post_event(api, fake_stripe, fake_stripe.build_event("charge.refunded", fake_stripe.get(intent_id)["latest_charge"]))

        wallet = wallet_of(company)
        assert (wallet.lots_total, wallet.debt, wallet.total) == (0, 90, -90)
        assert credits_verify() == {}

    def test_admin_refund_is_billing_admin_only(self, api, company, fake_stripe, carded):
        buy(api, company)
        purchase = CreditPurchase.objects.get()
        url = "/admin/billing/creditpurchase/"

        run_action(client_with_role("Support"), url, "refund_purchase", [purchase], reason="nope")
        assert CreditPurchase.objects.get().amount_refunded == 0

        response = run_action(client_with_role("Billing admin"), url, "refund_purchase", [purchase],
                              reason="customer asked", amount="2.50")
        assert response.status_code == 200
        purchase.refresh_from_db()
        assert (purchase.amount_refunded, purchase.credits_reversed) == (250, 25)
        assert total(company) == 75


class TestWebhookOrderings:
    def test_refund_before_success_leaves_a_tombstone(self, api, company, product, fake_stripe):
        intent = metadata_intent(fake_stripe, company, product)
        succeeded = fake_stripe.build_event("payment_intent.succeeded", intent["id"])
        fake_stripe.refund(intent["id"], 1000)
        refunded = fake_stripe.build_event("charge.refunded", intent["latest_charge"])

        post_event(api, fake_stripe, refunded)
        post_event(api, fake_stripe, succeeded)

        purchase = CreditPurchase.objects.get()
        assert purchase.status == PurchaseStatus.TOMBSTONED
        assert total(company) == 0 and not LedgerEntry.objects.exists()
        assert not Event.objects.filter(type="credits.purchase_succeeded").exists()
        assert credits_verify() == {}

    def test_success_twice_credits_once(self, api, company, product, fake_stripe):
        intent = metadata_intent(fake_stripe, company, product)
        for _ in range(2):
            post_event(api, fake_stripe, fake_stripe.build_event("payment_intent.succeeded", intent["id"]))
        assert total(company) == 100 and LedgerEntry.objects.filter(kind=EntryKind.PURCHASE).count() == 1
        assert credits_verify() == {}

    def test_any_order_same_final_state(self, api, company, product, fake_stripe):
        intent = metadata_intent(fake_stripe, company, product)
        fake_stripe.refund(intent["id"], 400)
        events = [fake_stripe.build_event("charge.refunded", intent["latest_charge"]),
                  fake_stripe.build_event("payment_intent.succeeded", intent["id"])]
        for event in events + events[::-1]:
            post_event(api, fake_stripe, event)
        assert total(company) == 60 and CreditPurchase.objects.get().credits_reversed == 40
        assert credits_verify() == {}

    def test_timeout_at_stripe_is_503_then_the_webhook_credits_it(self, api, company, fake_stripe, carded, settings):
        settings.STRIPE_TIMEOUT_SECONDS = 0.5
        fake_stripe.hang_next(1, seconds=1, paths="/v1/payment_intents", then="process")

        assert buy(api, company).status_code == 503
        assert not CreditPurchase.objects.exists()
        deadline = time.monotonic() + 5
        while not fake_stripe.payment_intents and time.monotonic() < deadline:
            time.sleep(0.05)  # the fake finishes the stalled call after the client gave up
        intent = fake_stripe.payment_intents[0]
        post_event(api, fake_stripe, fake_stripe.build_event("payment_intent.succeeded", intent["id"]))
        assert total(company) == 100
        # The product's retry with the same key gets the same purchase, no second charge.
        assert buy(api, company).json()["paymentIntentId"] == intent["id"]
        assert len(fake_stripe.payment_intents) == 1 and total(company) == 100

    def test_dispute_freezes_the_wallet(self, api, company, product, fake_stripe, carded):
        intent_id = buy(api, company).json()["paymentIntentId"]
        fake_stripe.create_dispute(intent_id)
        dispute = fake_stripe.disputes[-1]

        post_event(api, fake_stripe, fake_stripe.build_event("charge.dispute.created", dispute["id"]))

        wallet = wallet_of(company)
        assert wallet.frozen and "dispute" in wallet.frozen_reason
        assert CreditPurchase.objects.get().disputed


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_webhook_and_confirmation_at_once_land_once(company, product, fake_stripe):
    intent = metadata_intent(fake_stripe, company, product)
    barrier = threading.Barrier(4)
    errors = []

    def run():
        try:
            barrier.wait()
            purchase_sync_by_intent_id(intent["id"])
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert LedgerEntry.objects.filter(kind=EntryKind.PURCHASE).count() == 1 and total(company) == 100
    assert Event.objects.filter(type="credits.purchase_succeeded").count() == 1
    assert credits_verify() == {}
