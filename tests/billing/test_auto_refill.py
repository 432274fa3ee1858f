"""Auto-refill (SPEC §7) against the fake Stripe over real HTTP: settings by
PUT, a debit under the threshold writes one refill request, the billing job
makes one off-session PaymentIntent within the monthly limit, failures are
recorded, shown and notified; concurrent debits make exactly one PaymentIntent."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from billing.services.refills import auto_refill_run
from credits.models import RefillRequest, RefillStatus, Wallet
from credits.services import credits_debit, credits_grant
from credits.verify import credits_verify
from notifications.models import Event
from tests.billing.test_api_money_flows import add_card, ensure_customer

pytestmark = pytest.mark.django_db


def settings_body(**extra):
    return {"enabled": True, "threshold": 5, "credits": 100, "amount": 1000, "currency": "eur", **extra}


def put(api, company, **extra):
    return api.put(f"/api/v1/companies/{company.pk}/credits/auto-refill", settings_body(**extra), format="json")


def debit(product, company, amount, job):
    return credits_debit(product_id=product.pk, company_id=company.pk, amount=amount, job_id=job, source_service="t")


@pytest.fixture
def ready(api, company, product, fake_stripe):
    ensure_customer(api, company)
    add_card(api, fake_stripe, company)
    credits_grant(company_id=company.pk, product_id=product.pk, amount=10, reason="start")
    return company


class TestSettings:
    def test_put_then_get_shows_the_block(self, api, company, ready):
        response = put(api, company, monthlySpendLimit=5000, lowBalanceThreshold=3)

        assert response.status_code == 200, response.json()
        block = api.get(f"/api/v1/companies/{company.pk}/credits").json()["autoRefill"]
        assert block == {"enabled": True, "threshold": 5, "credits": 100, "amount": 1000, "currency": "eur",
                         "monthlySpendLimit": 5000, "spentThisMonth": 0, "paymentMethodId": None, "inFlight": False,
                         "lastFailure": None} == response.json()
        assert Wallet.objects.get().low_balance_threshold == 3

    def test_bad_input_is_400(self, api, company, ready):
        assert put(api, company, credits=0).status_code == 400
        assert put(api, company, monthlySpendLimit=10).status_code == 400  # below one refill
        assert put(api, company, currency="euro").status_code == 400


class TestRefill:
    def test_debit_under_threshold_refills_once(self, api, company, product, ready, fake_stripe,
                                                django_capture_on_commit_callbacks):
        put(api, company)
        with django_capture_on_commit_callbacks(execute=True):
            debit(product, company, 4, "a")  # 6: above the threshold
        assert not RefillRequest.objects.exists()
        with django_capture_on_commit_callbacks(execute=True):
            debit(product, company, 2, "b")  # 4 < 5 → request, job runs on commit

        request = RefillRequest.objects.get()
        assert request.status == RefillStatus.SUCCEEDED and request.amount == 1000
        assert Wallet.objects.get().total == 104
        intent = fake_stripe.get(request.payment_intent_id)
        assert intent["off_session"] is True and intent["status"] == "succeeded"
        block = api.get(f"/api/v1/companies/{company.pk}/credits").json()["autoRefill"]
        assert block["spentThisMonth"] == 1000 and block["inFlight"] is False
        assert credits_verify() == {}

    def test_declined_card_is_recorded_and_notified_and_not_retried_each_debit(
            self, api, company, product, fake_stripe):
        ensure_customer(api, company)
        add_card(api, fake_stripe, company, card="pm_card_chargeCustomerFail")
        credits_grant(company_id=company.pk, product_id=product.pk, amount=10, reason="start")
        put(api, company)
        debit(product, company, 6, "a")
        auto_refill_run()

        request = RefillRequest.objects.get()
        assert (request.status, request.error_code) == (RefillStatus.FAILED, "generic_decline")
        failure = api.get(f"/api/v1/companies/{company.pk}/credits").json()["autoRefill"]["lastFailure"]
        assert failure["code"] == "generic_decline"
        assert Event.objects.get(type="credits.refill_failed").data["code"] == "generic_decline"
        debit(product, company, 1, "b")
        assert RefillRequest.objects.count() == 1  # paused after a failure
        assert Wallet.objects.get().total == 3

    def test_monthly_spend_limit(self, api, company, product, ready, fake_stripe):
        put(api, company, monthlySpendLimit=1500)
        debit(product, company, 6, "a")
        auto_refill_run()
        debit(product, company, 100, "b")  # 4 + 100 - 100 = 4 → second request
        auto_refill_run()

        statuses = list(RefillRequest.objects.order_by("created_at").values_list("status", "error_code"))
        assert statuses == [(RefillStatus.SUCCEEDED, ""), (RefillStatus.FAILED, "monthly_spend_limit")]
        assert len(fake_stripe.payment_intents) == 1

    def test_stripe_down_leaves_the_request_pending(self, api, company, product, ready, fake_stripe):
        put(api, company)
        debit(product, company, 6, "a")
        fake_stripe.fail_next(1, status=500, paths="/v1/payment_intents")
        auto_refill_run()
        assert RefillRequest.objects.get().status == RefillStatus.PENDING
        auto_refill_run()
        assert RefillRequest.objects.get().status == RefillStatus.SUCCEEDED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_debits_crossing_the_threshold_make_one_payment_intent(api, company, product, fake_stripe):
    ensure_customer(api, company)
    add_card(api, fake_stripe, company)
    credits_grant(company_id=company.pk, product_id=product.pk, amount=10, reason="start")
    put(api, company)
    barrier = threading.Barrier(6)
    errors = []

    def run(index):
        try:
            barrier.wait()
            debit(product, company, 1, f"job-{index}")
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    auto_refill_run()

    assert errors == []
    assert RefillRequest.objects.count() == 1 and len(fake_stripe.payment_intents) == 1
    assert Wallet.objects.get().total == 10 - 6 + 100
    assert credits_verify() == {}
