"""SKIP LOCKED work claiming on PostgreSQL: any number of workers, each event
sent exactly once."""

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
