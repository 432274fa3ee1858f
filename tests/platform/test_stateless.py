"""Issue 16, item 5 (SPEC §10): nothing in the web or worker processes
assumes a single process. Two gunicorn servers (2 workers × 4 threads each)
and two Celery worker processes run against one PostgreSQL database and one
Redis (cache and broker), and every exactness guarantee holds:

- tracks with idempotency keys, each key sent to both servers at once: counted
  once (one event per key, both answers name it), meter = events = rollups;
- credit debits, each job sent to both servers at once, on a wallet that
  cannot pay them all: exactly the balance is admitted, never more, and the
  books (ledger, lots, balance) agree;
- the usage those tracks made billable is delivered to the (fake) Stripe by
  both workers, each event exactly once.

What in-process state remains, and why it is safe with many processes, is
listed in docs/scaling.md ("Stateless processes")."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
from django.db.models import Sum

from credits.models import LedgerEntry, Wallet
from credits.services import credits_grant
from credits.verify import wallet_verify
from metering.models import UsageDailyRollup, UsageEvent, UsageEventKey, UsageMeter
from tests.billing.conftest import (  # noqa: F401 (fixtures)
    API_KEY,
    WEBHOOK_SECRET,
    _fake_stripe_server,
    billed_company,
    catalog,
    company,
    fake_stripe,
    stripe_catalog,
)
from tests.billing.test_celery_worker import (  # noqa: F401 (fixtures)
    Worker,
    _broker_url,
    assert_exactly_once,
    broker,
    metered_company,
    wait_until_delivered,
)
from tests.live import gunicorn_server, http_json

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

TRACKS = 100
CREDITS = 50
JOBS = 80


@pytest.fixture
def servers(fake_stripe, broker):
    """Two gunicorn servers sharing the test database and one Redis DB as
    cache and broker (the workers' broker)."""
    env = {
        "REDIS_URL": _broker_url(),
        "CACHE_KEY_PREFIX": "stateless-test",
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": fake_stripe.api_base,
        "STRIPE_METER_EVENTS_API_BASE": fake_stripe.meter_events_api_base,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    with ExitStack() as stack:
        yield [stack.enter_context(gunicorn_server(env=env, workers=2, threads=4)) for _ in range(2)]


def _on_both(servers, requests):
    """Send each (method, path, body) to both servers at once; the answers
    per request as [(status, body) from server 0, from server 1]."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [
            [pool.submit(http_json, method, server.base + path, body, key=key) for server in servers]
            for method, path, body, key in requests
        ]
        return [[future.result() for future in pair] for pair in futures]


def test_two_servers_and_two_workers_keep_every_guarantee(api, product, metered_company, stripe_catalog, fake_stripe,
                                                          broker, servers):
    company, feature = metered_company, stripe_catalog.ai_credit

    # Tracks: every key on both servers at once.
    tracks = [
        ("POST", "/api/v1/usage/track",
         {"companyId": str(company.pk), "featureCode": "ai_credit", "quantity": 1 + n % 3, "idempotencyKey": f"job-{n}"},
         api.raw_key)
        for n in range(TRACKS)
    ]  # fmt: skip
    answers = _on_both(servers, tracks)
    for (first_status, first), (second_status, second) in answers:
        assert (first_status, second_status) == (200, 200), (first, second)
        assert first["eventId"] == second["eventId"]
    expected = sum(1 + n % 3 for n in range(TRACKS))
    events = UsageEvent.objects.filter(company=company, feature=feature)
    assert events.count() == TRACKS
    assert len({answer[0][1]["eventId"] for answer in answers}) == TRACKS
    assert UsageEventKey.objects.filter(product_id=product.pk).count() == TRACKS
    assert UsageMeter.objects.get(company=company, feature=feature).value == expected
    assert events.aggregate(total=Sum("quantity"))["total"] == expected
    rollups = UsageDailyRollup.objects.filter(company=company, feature=feature).aggregate(
        quantity=Sum("quantity"), billable=Sum("billable_quantity"), events=Sum("events")
    )
    assert rollups == {
        "quantity": expected,
        "billable": events.aggregate(total=Sum("billable_delta"))["total"],
        "events": TRACKS,
    }

    # Debits: every job on both servers at once, more jobs than credits.
    credits_grant(company_id=company.pk, product_id=product.pk, amount=CREDITS, reason="stateless test")
    debits = [
        ("POST", "/api/v1/credits/debit",
         {"companyId": str(company.pk), "amount": 1, "jobId": f"render-{n}", "sourceService": "test"}, api.raw_key)
        for n in range(JOBS)
    ]  # fmt: skip
    answers = _on_both(servers, debits)
    admitted = 0
    for (first_status, first), (second_status, second) in answers:
        # A job gets one answer from both servers: the balance only goes down,
        # so a job refused on one is refused on the other; an admitted one is replayed.
        assert first_status == second_status and first_status in (200, 201, 402), (first, second)
        admitted += first_status in (200, 201)
    assert admitted == CREDITS
    wallet = Wallet.objects.get(company=company, product=product)
    assert wallet_verify(wallet) == []
    assert LedgerEntry.objects.filter(wallet=wallet, amount__lt=0).count() == CREDITS
    assert LedgerEntry.objects.filter(wallet=wallet).aggregate(total=Sum("amount"))["total"] == 0

    # Queued jobs: two worker processes drain the Stripe delivery queue.
    workers = [Worker(fake_stripe, concurrency=1) for _ in range(2)]
    try:
        wait_until_delivered(broker)
    finally:
        for worker in workers:
            worker.stop()
    assert_exactly_once(fake_stripe, company)
    assert fake_stripe.duplicate_meter_events == 0
