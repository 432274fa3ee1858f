"""Usage → Stripe meters: batches, billable deltas, identifiers, backoff,
the 35-day window, no key, session renewal — over real HTTP to the fake."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.services.delivery import TOO_OLD_ERROR, deliver_pending_usage
from metering.services import usage_delivery_retry
from metering.models import UsageEvent
from tests.billing.conftest import make_due, seed_usage_events

pytestmark = pytest.mark.django_db

STREAM = "/v2/billing/meter_event_stream"


def statuses():
    return dict(
        (status, count)
        for status, count in __import__("collections").Counter(
            UsageEvent.objects.values_list("stripe_delivery_status", flat=True)
        ).items()
    )


def test_delivers_in_batches_of_at_most_100(billed_company, fake_stripe, stripe_catalog):
    events = seed_usage_events(billed_company, stripe_catalog.ai_credit, 250, billable_delta=2)

    result = deliver_pending_usage(batch_size=100)

    assert (result.delivered, result.failed, result.retry_scheduled) == (250, 0, 0)
    assert fake_stripe.request_count(STREAM) == 3
    assert len(fake_stripe.meter_events) == 250
    customer = billed_company.billing_profiles.get().stripe_customer_id
    assert fake_stripe.meter_event_total("ai_credit", customer) == 500
    sent = {event["identifier"]: event for event in fake_stripe.meter_events}
    assert set(sent) == {str(event.pk) for event in events}
    one = sent[str(events[0].pk)]
    assert one["payload"] == {"stripe_customer_id": customer, "value": "2"}
    assert abs(one["timestamp"] - events[0].event_time.timestamp()) < 1
    assert statuses() == {"delivered": 250}
    assert not UsageEvent.objects.filter(delivered_at__isnull=True).exists()


def test_large_claims_are_still_sent_100_at_a_time(billed_company, fake_stripe, stripe_catalog):
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 250)

    deliver_pending_usage(batch_size=1000)

    assert fake_stripe.request_count(STREAM) == 3
    assert len(fake_stripe.meter_events) == 250


def test_sends_billable_deltas_including_negative_corrections(api, billed_company, fake_stripe, stripe_catalog):
    from billing.services.subscriptions import company_access_sync
    from companies.actors import Actor

    # Free tier: 100 included, limit 100 → raise the limit to bill overage.
    company_access_sync(company=billed_company, product_id=stripe_catalog.product.pk, actor=Actor.system("test"), reason="t")
    api.patch(f"/api/v1/companies/{billed_company.pk}/features/ai_credit", {"quantityLimit": 1000}, format="json")
    for quantity in (60, 60, 30):  # 120 → billable 20, then 30 more
        response = api.post(
            "/api/v1/usage/track", {"companyId": str(billed_company.pk), "featureCode": "ai_credit", "quantity": quantity},
            format="json",
        )
        assert response.status_code == 200, response.json()
    response = api.post(
        "/api/v1/usage/adjust",
        {"companyId": str(billed_company.pk), "featureCode": "ai_credit", "delta": -40, "reason": "refund a bad run"},
        format="json",
    )
    assert response.status_code == 200, response.json()

    deliver_pending_usage()

    values = sorted(event["value"] for event in fake_stripe.meter_events)
    assert values == [-40, 20, 30]
    customer = billed_company.billing_profiles.get().stripe_customer_id
    assert fake_stripe.meter_event_total("ai_credit", customer) == 10
    # Usage inside the included quantity has nothing to bill and is never sent.
    assert UsageEvent.objects.filter(stripe_delivery_status="not_applicable").count() == 1


def test_a_retry_after_stripe_already_accepted_never_double_bills(billed_company, fake_stripe, stripe_catalog, settings):
    settings.STRIPE_TIMEOUT_SECONDS = 0.5
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 50)
    # Stripe records the batch but the answer never reaches us (client timeout).
    fake_stripe.hang_next(1, seconds=1.5, paths=STREAM, then="process")

    first = deliver_pending_usage()
    assert first.retry_scheduled == 50
    assert statuses() == {"pending": 50}
    deadline = time.monotonic() + 5
    while len(fake_stripe.meter_events) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)  # until the stalled request has been recorded by "Stripe"
    assert len(fake_stripe.meter_events) == 50
    make_due()

    second = deliver_pending_usage()

    assert second.delivered == 50
    assert len(fake_stripe.meter_events) == 50
    assert fake_stripe.duplicate_meter_events == 50
    assert fake_stripe.meter_event_total("ai_credit") == 50


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_errors_back_off_per_event(billed_company, fake_stripe, stripe_catalog, status):
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 10)
    fake_stripe.fail_next(1, status=status, retry_after=1 if status == 429 else None, paths=STREAM)
    before = timezone.now()

    result = deliver_pending_usage()

    assert result.retry_scheduled == 10
    event = UsageEvent.objects.first()
    assert event.stripe_delivery_status == "pending"
    assert event.stripe_delivery_attempts == 1
    assert str(status) in event.stripe_delivery_error
    assert event.stripe_next_attempt_at > before + timedelta(seconds=20)
    # Not due yet: the next pass leaves them alone.
    assert deliver_pending_usage().delivered == 0
    make_due()
    assert deliver_pending_usage().delivered == 10
    assert len(fake_stripe.meter_events) == 10


def test_backoff_grows_exponentially(billed_company, fake_stripe, stripe_catalog):
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 1)
    delays = []
    for _ in range(3):
        fake_stripe.fail_next(1, status=500, paths=STREAM)
        start = timezone.now()
        deliver_pending_usage()
        delays.append((UsageEvent.objects.get().stripe_next_attempt_at - start).total_seconds())
        make_due()
    assert delays[0] < delays[1] < delays[2]
    assert UsageEvent.objects.get().stripe_delivery_attempts == 3


def test_after_the_last_attempt_the_event_fails_and_can_be_retried(billed_company, fake_stripe, stripe_catalog, settings):
    settings.BILLING_DELIVERY_MAX_ATTEMPTS = 3
    events = seed_usage_events(billed_company, stripe_catalog.ai_credit, 5)
    for _ in range(3):
        fake_stripe.fail_next(1, status=500, paths=STREAM)
        deliver_pending_usage()
        make_due()

    failed = UsageEvent.objects.filter(stripe_delivery_status="failed")
    assert failed.count() == 5
    assert failed.first().stripe_delivery_error.startswith("Gave up after 3 attempts")
    assert deliver_pending_usage().delivered == 0  # failed events wait for staff

    assert usage_delivery_retry(event_ids=[event.pk for event in events]) == 5
    assert deliver_pending_usage().delivered == 5
    assert len(fake_stripe.meter_events) == 5


def test_network_failure_is_transient(billed_company, fake_stripe, stripe_catalog, settings):
    settings.STRIPE_TIMEOUT_SECONDS = 0.3
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 3)
    fake_stripe.hang_next(1, seconds=1, paths=STREAM)

    assert deliver_pending_usage().retry_scheduled == 3
    assert "APIConnectionError" in UsageEvent.objects.first().stripe_delivery_error


def test_events_past_the_35_day_window_fail_with_that_reason(billed_company, fake_stripe, stripe_catalog):
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 2, event_time=timezone.now() - timedelta(days=36))
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 1, event_time=timezone.now() - timedelta(days=34))

    result = deliver_pending_usage()

    assert (result.delivered, result.failed) == (1, 2)
    assert list(UsageEvent.objects.filter(stripe_delivery_status="failed").values_list("stripe_delivery_error", flat=True)) == [
        TOO_OLD_ERROR
    ] * 2
    assert len(fake_stripe.meter_events) == 1


def test_without_a_stripe_key_events_wait_as_pending(company, catalog, stripe_unconfigured):
    from tests.factories.billing import BillingProfileFactory

    BillingProfileFactory(company=company)
    seed_usage_events(company, catalog.ai_credit, 3)

    result = deliver_pending_usage()

    assert result.configured is False
    assert statuses() == {"pending": 3}


def test_companies_without_a_stripe_customer_wait(company, fake_stripe, stripe_catalog):
    seed_usage_events(company, stripe_catalog.ai_credit, 3)

    assert deliver_pending_usage().delivered == 0
    assert statuses() == {"pending": 3}
    assert fake_stripe.request_count(STREAM) == 0


def test_an_expired_session_is_renewed(billed_company, fake_stripe, stripe_catalog):
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 3)
    deliver_pending_usage()
    fake_stripe.expire_sessions()
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 4)

    result = deliver_pending_usage()

    assert result.delivered == 4
    assert fake_stripe.request_count("/v2/billing/meter_event_session") == 2
    assert len(fake_stripe.meter_events) == 7


def test_the_session_token_is_reused(billed_company, fake_stripe, stripe_catalog):
    for _ in range(3):
        seed_usage_events(billed_company, stripe_catalog.ai_credit, 2)
        deliver_pending_usage()

    assert fake_stripe.request_count("/v2/billing/meter_event_session") == 1


def test_a_refused_batch_fails_visibly(billed_company, fake_stripe, stripe_catalog):
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 2)
    fake_stripe.fail_next(1, status=400, paths=STREAM)

    result = deliver_pending_usage()

    assert result.failed == 2
    assert "400" in UsageEvent.objects.first().stripe_delivery_error


def test_management_command_runs_one_pass(billed_company, fake_stripe, stripe_catalog, capsys):
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 7)

    call_command("sync_usage_to_stripe")

    assert "delivered=7" in capsys.readouterr().out
    assert len(fake_stripe.meter_events) == 7


def test_management_command_without_key_says_so(stripe_unconfigured, capsys, db):
    call_command("sync_usage_to_stripe")

    assert "not configured" in capsys.readouterr().out


def test_celery_task_delivers(billed_company, fake_stripe, stripe_catalog):
    from billing.tasks import deliver_usage

    seed_usage_events(billed_company, stripe_catalog.ai_credit, 5)

    deliver_usage.delay()

    assert len(fake_stripe.meter_events) == 5


def test_a_key_stripe_refuses_leaves_events_pending(billed_company, fake_stripe, stripe_catalog, settings):
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 250)
    settings.STRIPE_API_KEY = "not_a_valid_key"

    result = deliver_pending_usage()

    assert result.stopped is True
    assert result.delivered == 0
    assert statuses() == {"pending": 250}
    assert not UsageEvent.objects.filter(stripe_delivery_attempts__gt=0).exists()


def test_a_backlog_of_companies_without_a_customer_does_not_block_others(
    billed_company, other_company, fake_stripe, stripe_catalog
):
    seed_usage_events(other_company, stripe_catalog.ai_credit, 300)  # older, no Stripe customer
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 5)

    result = deliver_pending_usage(batch_size=100)

    assert result.delivered == 5
    assert UsageEvent.objects.filter(company=other_company, stripe_delivery_status="pending").count() == 300


def test_retries_and_new_events_in_one_pass(billed_company, fake_stripe, stripe_catalog):
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 3)
    fake_stripe.fail_next(1, status=500, paths=STREAM)
    deliver_pending_usage()
    make_due()
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 250)

    result = deliver_pending_usage(batch_size=100)

    assert result.delivered == 253
    assert len(fake_stripe.meter_events) == 253


def test_a_claimed_event_with_nothing_to_bill_is_marked_by_metering_and_never_sent(
    billed_company, fake_stripe, stripe_catalog
):
    """The pass asks metering's rule (goes_to_stripe), through metering's
    delivery services: a pending event whose billable delta is 0 is set to
    not_applicable while claiming, and the rest of the batch is sent."""
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 1, billable_delta=0)
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 2, billable_delta=3)

    result = deliver_pending_usage(batch_size=100)

    assert result.delivered == 2 and len(fake_stripe.meter_events) == 2
    assert statuses() == {"not_applicable": 1, "delivered": 2}
