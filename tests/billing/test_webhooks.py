"""POST /stripe/webhook: signature, store-once, out-of-order safety, the
handled event types, failure recording and reprocessing."""

from __future__ import annotations

import json
import time

import pytest

from billing.models import StripeWebhookEvent, Subscription, WebhookEventStatus
from billing.services.webhooks import webhook_events_reprocess
from tests.billing.conftest import WEBHOOK_SECRET, access_of, completed_checkout

pytestmark = pytest.mark.django_db


def post_event(client, fake, event, *, secret=WEBHOOK_SECRET, timestamp=None):
    payload = json.dumps(event).encode()
    return client.post(
        "/stripe/webhook",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=fake.sign_payload(payload, secret, timestamp),
    )


def last_event(fake, event_type, object_id=None):
    events = [e for e in fake.events if e["type"] == event_type and (object_id is None or e["data"]["object"]["id"] == object_id)]
    return events[-1]


def claim(api, company, session_id):
    response = api.post(
        "/api/v1/billing/claim-checkout",
        {"companyId": str(company.pk), "checkoutSessionId": session_id},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return Subscription.objects.get(pk=response.json()["subscriptionId"])


class TestSignature:
    def test_bad_signature_is_400_and_nothing_is_stored(self, client, fake_stripe, stripe_catalog):
        event = fake_stripe.build_event("invoice.paid", {"id": "in_1", "object": "invoice"})

        response = post_event(client, fake_stripe, event, secret="whsec_wrong")

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "BAD_REQUEST"
        assert not StripeWebhookEvent.objects.exists()

    def test_missing_signature_is_400(self, client, fake_stripe):
        response = client.post("/stripe/webhook", data=b"{}", content_type="application/json")

        assert response.status_code == 400
        assert not StripeWebhookEvent.objects.exists()

    def test_old_signature_is_refused(self, client, fake_stripe):
        event = fake_stripe.build_event("invoice.paid", {"id": "in_1", "object": "invoice"})

        response = post_event(client, fake_stripe, event, timestamp=int(time.time()) - 3600)

        assert response.status_code == 400

    def test_tampered_body_is_400(self, client, fake_stripe):
        event = fake_stripe.build_event("invoice.paid", {"id": "in_1", "object": "invoice"})
        payload = json.dumps(event).encode()
        signature = fake_stripe.sign_payload(payload, WEBHOOK_SECRET)

        response = client.post(
            "/stripe/webhook", data=payload.replace(b"in_1", b"in_2"), content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature,
        )

        assert response.status_code == 400

    def test_without_a_webhook_secret_is_503(self, client, fake_stripe, settings):
        settings.STRIPE_WEBHOOK_SECRET = ""
        event = fake_stripe.build_event("invoice.paid", {"id": "in_1", "object": "invoice"})

        response = post_event(client, fake_stripe, event)

        assert response.status_code == 503
        assert "STRIPE_WEBHOOK_SECRET" in response.json()["error"]["message"]

    def test_get_is_not_allowed(self, client):
        assert client.get("/stripe/webhook").status_code == 405


class TestStoreOnce:
    def test_unhandled_type_is_stored_and_ignored(self, client, fake_stripe):
        event = fake_stripe.build_event("customer.created", {"id": "cus_1", "object": "customer"})

        response = post_event(client, fake_stripe, event)

        assert response.status_code == 200
        assert response.json() == {"received": True, "eventId": event["id"], "status": "ignored"}
        stored = StripeWebhookEvent.objects.get()
        assert stored.payload["id"] == event["id"]
        assert stored.type == "customer.created"

    def test_a_repeat_is_a_no_op(self, client, api, company, fake_stripe, stripe_catalog):
        subscription = claim(api, company, completed_checkout(fake_stripe)["id"])
        fake_stripe.update_subscription(subscription.stripe_subscription_id, status="past_due")
        event = last_event(fake_stripe, "customer.subscription.updated")

        first = post_event(client, fake_stripe, event)
        requests_after_first = fake_stripe.request_count()
        second = post_event(client, fake_stripe, event)

        assert first.status_code == second.status_code == 200
        assert second.json()["status"] == "processed"
        stored = StripeWebhookEvent.objects.get(stripe_event_id=event["id"])
        assert stored.attempts == 1
        assert fake_stripe.request_count() == requests_after_first  # nothing re-read
        subscription.refresh_from_db()
        assert subscription.status == "past_due"


class TestSubscriptionEvents:
    def test_billing_periods_follow_the_subscription_into_metering(self, client, api, company, fake_stripe, stripe_catalog):
        """Billing pushes the periods of granting subscriptions into metering's
        table (SPEC §1 (b)); `billing_period` meters follow them."""
        from metering.models import BillingPeriod
        from metering.periods import period_for

        subscription = claim(api, company, completed_checkout(fake_stripe)["id"])
        subscription.refresh_from_db()
        period = (subscription.current_period_start, subscription.current_period_end)
        assert list(BillingPeriod.objects.filter(company=company).values_list("period_start", "period_end")) == [period]
        inside = period[0] + (period[1] - period[0]) / 2
        assert (period_for("billing_period", inside, company_id=company.pk).start) == period[0]

        fake_stripe.cancel_subscription(subscription.stripe_subscription_id)
        post_event(client, fake_stripe, last_event(fake_stripe, "customer.subscription.deleted"))

        assert not BillingPeriod.objects.filter(company=company).exists()

    def test_deleted_subscription_falls_back_to_the_default_tier(self, client, api, company, fake_stripe, stripe_catalog):
        subscription = claim(api, company, completed_checkout(fake_stripe)["id"])
        assert access_of(company, stripe_catalog.sso).is_enabled
        fake_stripe.cancel_subscription(subscription.stripe_subscription_id)

        response = post_event(client, fake_stripe, last_event(fake_stripe, "customer.subscription.deleted"))

        assert response.status_code == 200
        subscription.refresh_from_db()
        assert subscription.status == "canceled"
        assert subscription.canceled_at is not None
        assert not access_of(company, stripe_catalog.sso).is_enabled
        ai_credit = access_of(company, stripe_catalog.ai_credit)
        assert (ai_credit.included_quantity, ai_credit.quantity_limit) == (100, 100)
        assert api.get(f"/api/v1/billing/status/{company.pk}").json()["activeSubscriptions"] == []

    def test_updated_before_created_ends_in_the_current_state(self, client, fake_stripe, stripe_catalog, company):
        from tests.factories.billing import BillingProfileFactory

        customer = fake_stripe.create_customer()
        BillingProfileFactory(company=company, stripe_customer_id=customer["id"])
        stripe_subscription = fake_stripe.create_subscription(customer["id"], ["price_pro_base"])
        created = last_event(fake_stripe, "customer.subscription.created", stripe_subscription["id"])
        # Upgrade to enterprise at Stripe: the items change.
        item_id = stripe_subscription["items"]["data"][0]["id"]
        fake_stripe.client(api_key="sk_test_x").v1.subscriptions.update(
            stripe_subscription["id"], params={"items": [{"id": item_id, "price": "price_ent_base"}]}
        )
        updated = last_event(fake_stripe, "customer.subscription.updated", stripe_subscription["id"])

        assert post_event(client, fake_stripe, updated).status_code == 200
        assert post_event(client, fake_stripe, created).status_code == 200  # late, stale payload

        subscription = Subscription.objects.get(stripe_subscription_id=stripe_subscription["id"])
        assert subscription.company == company
        assert subscription.tier.code == "enterprise"
        assert access_of(company, stripe_catalog.ai_credit).included_quantity == 10000

    def test_tier_change_reapplies_the_tier(self, client, api, company, fake_stripe, stripe_catalog):
        subscription = claim(api, company, completed_checkout(fake_stripe)["id"])
        fake_stripe.update_subscription(subscription.stripe_subscription_id, metadata={"tier_code": "enterprise"})

        post_event(client, fake_stripe, last_event(fake_stripe, "customer.subscription.updated"))

        subscription.refresh_from_db()
        assert subscription.tier.code == "enterprise"
        assert access_of(company, stripe_catalog.ai_credit).included_quantity == 10000

    def test_cancel_at_period_end_is_mirrored_and_access_kept(self, client, api, company, fake_stripe, stripe_catalog):
        subscription = claim(api, company, completed_checkout(fake_stripe)["id"])
        fake_stripe.client(api_key="sk_test_x").v1.subscriptions.update(
            subscription.stripe_subscription_id, params={"cancel_at_period_end": True}
        )

        post_event(client, fake_stripe, last_event(fake_stripe, "customer.subscription.updated"))

        subscription.refresh_from_db()
        assert subscription.cancel_at_period_end is True
        assert subscription.status == "active"
        assert access_of(company, stripe_catalog.sso).is_enabled
        assert api.get(f"/api/v1/billing/status/{company.pk}").json()["activeSubscriptions"][0]["cancelAtPeriodEnd"] is True

    def test_subscription_of_an_unknown_customer_is_ignored(self, client, fake_stripe, stripe_catalog):
        customer = fake_stripe.create_customer()
        fake_stripe.create_subscription(customer["id"], ["price_pro_base"])

        response = post_event(client, fake_stripe, last_event(fake_stripe, "customer.subscription.created"))

        assert response.status_code == 200
        assert not Subscription.objects.exists()
        assert StripeWebhookEvent.objects.get().result["action"] == "ignored"


class TestInvoiceEvents:
    def test_payment_failed_then_paid(self, client, api, company, fake_stripe, stripe_catalog):
        subscription = claim(api, company, completed_checkout(fake_stripe)["id"])
        period_end = subscription.current_period_end

        fake_stripe.advance_subscription(subscription.stripe_subscription_id, paid=False)
        post_event(client, fake_stripe, last_event(fake_stripe, "invoice.payment_failed"))

        subscription.refresh_from_db()
        assert subscription.status == "past_due"
        assert subscription.current_period_end > period_end
        assert access_of(company, stripe_catalog.sso).is_enabled  # Stripe is still retrying the payment

        fake_stripe.update_subscription(subscription.stripe_subscription_id, status="active")
        post_event(client, fake_stripe, last_event(fake_stripe, "invoice.paid"))
        subscription.refresh_from_db()
        assert subscription.status == "active"

    def test_unpaid_drops_to_the_default_tier(self, client, api, company, fake_stripe, stripe_catalog):
        subscription = claim(api, company, completed_checkout(fake_stripe)["id"])
        fake_stripe.update_subscription(subscription.stripe_subscription_id, status="unpaid")

        post_event(client, fake_stripe, last_event(fake_stripe, "customer.subscription.updated"))

        assert not access_of(company, stripe_catalog.sso).is_enabled


class TestCheckoutCompleted:
    def test_session_started_for_a_company_is_claimed(self, client, company, fake_stripe, stripe_catalog):
        session = completed_checkout(fake_stripe, client_reference_id=str(company.pk))

        response = post_event(client, fake_stripe, last_event(fake_stripe, "checkout.session.completed"))

        assert response.status_code == 200
        subscription = Subscription.objects.get()
        assert subscription.company == company
        assert subscription.checkout_session_id == session["id"]
        assert subscription.tier.code == "pro"

    def test_webhook_then_claim_is_already_claimed(self, client, api, company, fake_stripe, stripe_catalog):
        session = completed_checkout(fake_stripe, client_reference_id=str(company.pk))
        post_event(client, fake_stripe, last_event(fake_stripe, "checkout.session.completed"))

        response = api.post(
            "/api/v1/billing/claim-checkout", {"companyId": str(company.pk), "checkoutSessionId": session["id"]}, format="json"
        )

        assert response.json()["alreadyClaimed"] is True

    def test_session_without_a_company_waits_for_the_claim(self, client, fake_stripe, stripe_catalog):
        completed_checkout(fake_stripe)

        response = post_event(client, fake_stripe, last_event(fake_stripe, "checkout.session.completed"))

        assert response.status_code == 200
        assert StripeWebhookEvent.objects.get().result["action"] == "unclaimed"
        assert not Subscription.objects.exists()


class TestFailures:
    def test_failure_is_recorded_and_can_be_reprocessed(self, client, api, company, fake_stripe, stripe_catalog):
        subscription = claim(api, company, completed_checkout(fake_stripe)["id"])
        fake_stripe.update_subscription(subscription.stripe_subscription_id, status="past_due")
        event = last_event(fake_stripe, "customer.subscription.updated")
        fake_stripe.fail_next(1, status=500, paths="/v1/subscriptions")

        response = post_event(client, fake_stripe, event)

        # Non-2xx so that Stripe redelivers; the event is kept with its error.
        assert response.status_code == 503
        stored = StripeWebhookEvent.objects.get(stripe_event_id=event["id"])
        assert stored.status == WebhookEventStatus.FAILED
        assert "500" in stored.processing_error
        assert stored.attempts == 1
        subscription.refresh_from_db()
        assert subscription.status == "active"

        counts = webhook_events_reprocess(webhook_event_ids=[stored.pk])

        assert counts == {"processed": 1, "failed": 0, "skipped": 0}
        stored.refresh_from_db()
        assert stored.status == WebhookEventStatus.PROCESSED
        assert stored.processing_error == ""
        assert stored.attempts == 2
        subscription.refresh_from_db()
        assert subscription.status == "past_due"

    def test_stripe_redelivery_of_a_failed_event_processes_it(self, client, api, company, fake_stripe, stripe_catalog):
        subscription = claim(api, company, completed_checkout(fake_stripe)["id"])
        fake_stripe.update_subscription(subscription.stripe_subscription_id, status="past_due")
        event = last_event(fake_stripe, "customer.subscription.updated")
        fake_stripe.fail_next(1, status=500, paths="/v1/subscriptions")
        assert post_event(client, fake_stripe, event).status_code == 503

        response = post_event(client, fake_stripe, event)

        assert response.status_code == 200
        assert response.json()["status"] == "processed"
        assert StripeWebhookEvent.objects.count() == 1

    def test_reprocess_skips_processed_events(self, client, fake_stripe):
        event = fake_stripe.build_event("customer.created", {"id": "cus_1", "object": "customer"})
        post_event(client, fake_stripe, event)
        stored = StripeWebhookEvent.objects.get()
        stored.status = WebhookEventStatus.PROCESSED
        stored.save()

        assert webhook_events_reprocess(webhook_event_ids=[stored.pk]) == {"processed": 0, "failed": 0, "skipped": 1}
