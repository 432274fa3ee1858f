"""A real Celery worker (subprocess) on the real Redis broker and the test
PostgreSQL database delivers usage tracked through the API to the fake Stripe
exactly once — also when the fake fails 30 % of calls at random, and when the
worker is SIGKILLed in the middle of a batch and a new one takes over."""

from __future__ import annotations

import os
import time

import pytest
from celery import Celery

from companies.actors import Actor
from metering.models import UsageEvent
from tests.billing.conftest import API_KEY, WEBHOOK_SECRET
from tests.live import CeleryWorker

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

STREAM = "/v2/billing/meter_event_stream"


def _broker_url() -> str:
    """A Redis DB of its own for the broker (REDIS_URL's host, DB 7 unless told)."""
    explicit = os.environ.get("BILLING_TEST_BROKER_URL")
    if explicit:
        return explicit
    base = os.environ["REDIS_URL"].rsplit("/", 1)[0]
    return f"{base}/7"


class Worker(CeleryWorker):
    """`celery -A config worker` against the test database and the fake Stripe."""

    def __init__(self, fake, *, concurrency: int = 2):
        super().__init__(
            settings_module="tests.billing.celery_worker_settings",
            concurrency=concurrency,
            env={
                "REDIS_URL": _broker_url(),
                "CACHE_KEY_PREFIX": "billing-worker-test",
                "STRIPE_API_KEY": API_KEY,
                "STRIPE_API_BASE": fake.api_base,
                "STRIPE_METER_EVENTS_API_BASE": fake.meter_events_api_base,
                "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            },
        )


@pytest.fixture
def broker():
    # set_as_current=False: shared tasks in later tests must keep resolving to config's app.
    app = Celery("billing-worker-test", broker=_broker_url(), set_as_current=False)
    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()  # a Redis DB of our own
    yield app
    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()


@pytest.fixture
def workers(fake_stripe):
    started: list[Worker] = []

    def start(**kwargs) -> Worker:
        worker = Worker(fake_stripe, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def metered_company(api, billed_company, stripe_catalog):
    """Every tracked unit is billable: nothing included, no limit."""
    from entitlements.services import feature_access_set

    feature_access_set(
        company=billed_company, feature=stripe_catalog.ai_credit,
        changes={"is_enabled": True, "included_quantity": 0, "quantity_limit": None},
        actor=Actor.system("test"), reason="test",
    )
    return billed_company


def track_through_api(api, company, count: int) -> None:
    events = [{"companyId": str(company.pk), "featureCode": "ai_credit", "quantity": 1 + i % 3} for i in range(count)]
    for start in range(0, count, 500):
        response = api.post("/api/v1/usage/track-batch", {"events": events[start : start + 500]}, format="json")
        assert response.status_code == 200, response.content
        assert all(item["status"] == "ok" for item in response.json()["results"])


def wait_until_delivered(broker, *, timeout: float = 90.0) -> None:
    """Send `billing.deliver_usage` like beat does until nothing is pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not UsageEvent.objects.filter(stripe_delivery_status__in=["pending"]).exists():
            return
        broker.send_task("billing.deliver_usage", kwargs={"batch_size": 100})
        time.sleep(0.5)
    pending = UsageEvent.objects.filter(stripe_delivery_status="pending").count()
    raise AssertionError(f"{pending} events still pending after {timeout}s")


def assert_exactly_once(fake, company) -> None:
    events = list(UsageEvent.objects.filter(company=company, stripe_delivery_status__in=["pending", "delivered", "failed"]))
    assert all(event.stripe_delivery_status == "delivered" for event in events)
    received = fake.meter_events
    assert sorted(event["identifier"] for event in received) == sorted(str(event.pk) for event in events)
    customer = company.billing_profiles.get().stripe_customer_id
    assert fake.meter_event_total("ai_credit", customer) == sum(event.billable_delta for event in events)


def test_usage_tracked_through_the_api_arrives_exactly_once(api, metered_company, fake_stripe, broker, workers):
    track_through_api(api, metered_company, 600)
    workers()

    wait_until_delivered(broker)

    assert_exactly_once(fake_stripe, metered_company)
    assert fake_stripe.duplicate_meter_events == 0


def test_exactly_once_with_30_percent_of_stripe_calls_failing(api, metered_company, fake_stripe, broker, workers):
    track_through_api(api, metered_company, 600)
    fake_stripe.fail_randomly(0.3, status=500, seed=7)
    workers(concurrency=2)
    workers(concurrency=2)  # two worker processes, four pool processes

    wait_until_delivered(broker)

    fake_stripe.clear_failures()
    assert_exactly_once(fake_stripe, metered_company)
    assert fake_stripe.request_count(STREAM) > 6  # failed batches were retried


def test_worker_killed_mid_batch_then_a_new_worker_finishes(api, metered_company, fake_stripe, broker, workers):
    track_through_api(api, metered_company, 300)
    # The first stream request stalls; Stripe records it after the worker is
    # gone — the case where only the identifier prevents double billing.
    fake_stripe.hang_next(1, seconds=4, paths=STREAM, then="process")
    first = workers(concurrency=1)
    broker.send_task("billing.deliver_usage", kwargs={"batch_size": 100})
    deadline = time.monotonic() + 30
    while fake_stripe.request_count(STREAM) < 1:
        assert time.monotonic() < deadline, "the worker never started delivering"
        time.sleep(0.05)

    first.kill()
    assert UsageEvent.objects.filter(stripe_delivery_status="delivered").count() == 0  # the batch was not committed

    while len(fake_stripe.meter_events) < 100:  # "Stripe" records the stalled batch after all
        assert time.monotonic() < deadline + 30, "the stalled request was never processed"
        time.sleep(0.05)
    workers(concurrency=1)
    wait_until_delivered(broker)

    assert_exactly_once(fake_stripe, metered_company)
    assert fake_stripe.duplicate_meter_events == 100  # the re-sent batch, ignored by identifier
