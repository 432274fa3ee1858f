"""Concurrency on PostgreSQL with real threads: SKIP LOCKED delivery (each
event sent exactly once by any number of workers), concurrent checkout claims,
webhook deliveries and onboarding calls, concurrent subscribe and
customer creation calls."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from billing.services.delivery import deliver_pending_usage
from metering.models import UsageEvent
from tests.billing.conftest import seed_usage_events

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _in_thread(fn, results, index, barrier=None):
    try:
        if barrier is not None:
            barrier.wait(timeout=10)
        results[index] = fn()
    except BaseException as error:  # noqa: BLE001 - surfaced by the test
        results[index] = error
    finally:
        connections.close_all()


def test_rows_locked_by_another_worker_are_skipped(billed_company, fake_stripe, stripe_catalog):
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 30)
    locked_ids = list(UsageEvent.objects.order_by("created_at").values_list("pk", flat=True)[:10])
    holding, release = threading.Event(), threading.Event()

    def hold_locks():
        with transaction.atomic():
            list(UsageEvent.objects.select_for_update().filter(pk__in=locked_ids))
            holding.set()
            release.wait(timeout=30)

    results = [None]
    holder = threading.Thread(target=_in_thread, args=(hold_locks, results, 0))
    holder.start()
    assert holding.wait(timeout=10)
    try:
        first = deliver_pending_usage(batch_size=100)
    finally:
        release.set()
        holder.join(timeout=30)

    assert first.delivered == 20
    assert set(UsageEvent.objects.filter(stripe_delivery_status="pending").values_list("pk", flat=True)) == set(locked_ids)
    assert deliver_pending_usage().delivered == 10
    assert len(fake_stripe.meter_events) == 30
    assert fake_stripe.duplicate_meter_events == 0


@pytest.mark.parametrize("workers", [2, 4])
def test_concurrent_workers_deliver_each_event_exactly_once(billed_company, fake_stripe, stripe_catalog, workers):
    assert connection.vendor == "postgresql"
    events = seed_usage_events(billed_company, stripe_catalog.ai_credit, 2000)
    barrier = threading.Barrier(workers)
    results: list = [None] * workers
    threads = [
        threading.Thread(
            target=_in_thread,
            args=(lambda i=i: deliver_pending_usage(batch_size=50, worker=f"w{i}"), results, i, barrier),
        )
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    for result in results:
        assert not isinstance(result, BaseException), result
    assert sum(result.delivered for result in results) == 2000
    assert fake_stripe.duplicate_meter_events == 0  # no event was claimed by two workers
    assert {event["identifier"] for event in fake_stripe.meter_events} == {str(event.pk) for event in events}
    assert UsageEvent.objects.filter(stripe_delivery_status="delivered").count() == 2000
    assert fake_stripe.request_count("/v2/billing/meter_event_stream") == sum(r.requests for r in results)


def _run_concurrently(*fns):
    barrier = threading.Barrier(len(fns))
    results: list = [None] * len(fns)
    threads = [threading.Thread(target=_in_thread, args=(fn, results, i, barrier)) for i, fn in enumerate(fns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_claims_of_one_session_by_two_companies(company, other_company, fake_stripe, stripe_catalog):
    from billing.models import Subscription
    from billing.services.subscriptions import checkout_claim
    from config.errors import Conflict
    from companies.actors import Actor
    from tests.billing.conftest import completed_checkout

    session = completed_checkout(fake_stripe)
    product_id = stripe_catalog.product.pk

    def claim_for(target):
        def claim():
            try:
                return checkout_claim(
                    product_id=product_id, company_id=target.pk, checkout_session_id=session["id"], actor=Actor.system("t")
                )
            except Conflict as error:
                return error
        return claim

    results = _run_concurrently(claim_for(company), claim_for(other_company))

    assert sorted(type(result).__name__ for result in results) == ["CheckoutClaimResult", "Conflict"]
    assert Subscription.objects.count() == 1


def test_concurrent_claims_by_the_same_company_claim_once(company, fake_stripe, stripe_catalog):
    from billing.models import Subscription
    from billing.services.subscriptions import checkout_claim
    from companies.actors import Actor
    from tests.billing.conftest import completed_checkout

    session = completed_checkout(fake_stripe)

    def claim():
        return checkout_claim(
            product_id=stripe_catalog.product.pk, company_id=company.pk, checkout_session_id=session["id"],
            actor=Actor.system("t"),
        )

    results = _run_concurrently(claim, claim, claim)

    assert not any(isinstance(result, BaseException) for result in results), results
    assert sorted(result.already_claimed for result in results) == [False, True, True]
    assert Subscription.objects.count() == 1


def test_concurrent_deliveries_of_one_webhook_process_it_once(company, fake_stripe, stripe_catalog):
    import json

    from billing.models import StripeWebhookEvent
    from billing.services.webhooks import webhook_event_receive
    from tests.billing.conftest import WEBHOOK_SECRET

    event = fake_stripe.build_event("customer.created", {"id": "cus_1", "object": "customer"})
    payload = json.dumps(event).encode()
    signature = fake_stripe.sign_payload(payload, WEBHOOK_SECRET)

    results = _run_concurrently(*[lambda: webhook_event_receive(payload=payload, signature=signature)] * 4)

    assert not any(isinstance(result, BaseException) for result in results), results
    stored = StripeWebhookEvent.objects.get()
    assert stored.attempts == 1


def test_concurrent_onboarding_of_one_org_creates_one_company(product, catalog):
    from billing.services.onboarding import onboard
    from companies.models import Company, ProductLink
    from companies.actors import Actor

    def call():
        return onboard(
            product_id=product.pk, external_org_id="org_race", hints={"company_name": "Race Inc"},
            contact_email="a@race.io", actor=Actor.system("t"),
        )

    results = _run_concurrently(call, call, call)

    assert not any(isinstance(result, BaseException) for result in results), results
    assert sorted(result.link_status for result in results) == ["already_linked", "already_linked", "created"]
    assert len({result.company.pk for result in results}) == 1
    assert Company.objects.count() == 1
    assert ProductLink.objects.filter(external_org_id="org_race").count() == 1


@pytest.mark.parametrize("same_key", [True, False])
def test_concurrent_subscribe_calls(api, company, fake_stripe, stripe_catalog, same_key):
    """Four simultaneous POST /billing/subscriptions for one company: with one
    Idempotency-Key Stripe makes one subscription and SaaSDesk links it once;
    with four keys there are four (the product asked four times)."""
    from billing.models import Subscription
    from billing.services.subscription_lifecycle import subscription_create
    from companies.actors import Actor
    from tests.billing.test_api_money_flows import add_card

    add_card(api, fake_stripe, company)
    barrier = threading.Barrier(4)
    results = [None] * 4

    def subscribe(index):
        return subscription_create(
            product_id=company.links.first().product_id, company_id=company.pk, tier_code="pro",
            idempotency_key="same" if same_key else f"key-{index}", actor=Actor.system("test"),
        ).subscription.pk

    threads = [threading.Thread(target=_in_thread, args=(lambda i=i: subscribe(i), results, i, barrier)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(isinstance(result, BaseException) for result in results), results
    expected = 1 if same_key else 4
    assert len(set(results)) == expected
    assert Subscription.objects.filter(company=company).count() == expected
    assert len(fake_stripe.subscriptions) == expected


def test_concurrent_customer_creation_makes_one_customer(company, product, fake_stripe):
    from billing.models import BillingProfile
    from billing.services.customers import stripe_customer_ensure
    from companies.actors import Actor

    barrier = threading.Barrier(4)
    results = [None] * 4

    def ensure():
        return stripe_customer_ensure(product_id=product.pk, company_id=company.pk, actor=Actor.system("test")).stripe_customer_id

    threads = [threading.Thread(target=_in_thread, args=(ensure, results, i, barrier)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(isinstance(result, BaseException) for result in results), results
    assert len(set(results)) == 1 and len(fake_stripe.customers) == 1
    assert BillingProfile.objects.get(company=company).stripe_customer_id == results[0]
