#!/usr/bin/env python
"""Delivery throughput: pending usage events in PostgreSQL → the fake Stripe's
v2 meter event stream, with one and with two worker processes running the
real delivery service (`billing.services.delivery.deliver_pending_usage`).

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/saasdesk_bench python bench/delivery.py
    options: --events 40000 --batch-size 100 --workers 1,2   (make bench-delivery)

Goal: at least 5,000 events/s per worker, so that Stripe's own stream limit
(10,000 requests/s), not ours, is the bottleneck.

Figures are events/s (total and per worker) next to a floor measured in the
same run: the fake server's own stream throughput from one client with
pre-built batches and no database. The worker's CPU time per event is shown
too: on a shared or small machine (the fake, PostgreSQL and the workers
compete for cores) it tells what one worker costs independent of the wall
clock. Nothing here asserts a timing."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import DEFAULT_DATABASE_URL, ensure_database, free_port, log  # noqa: E402

PRODUCT_CODE = "bench-delivery"


def _django(database_url: str, *, stripe_base: str | None = None) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ["DEBUG"] = "false"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.pop("REDIS_URL", None)
    if stripe_base:
        os.environ["STRIPE_API_KEY"] = "sk_test_bench"
        os.environ["STRIPE_API_BASE"] = stripe_base
        os.environ["STRIPE_METER_EVENTS_API_BASE"] = stripe_base
    import django

    django.setup()
    import logging

    # The SDK logs every request at INFO; production should set the "stripe"
    # logger to WARNING too (see docs/billing.md).
    logging.getLogger("stripe").setLevel(logging.WARNING)


def _seed(events: int) -> tuple[str, str]:
    """Product, metered feature, company with a Stripe customer, and `events`
    pending usage events (reused across runs: statuses are reset)."""
    from django.core.management import call_command
    from django.utils import timezone

    from billing.models import BillingProfile
    from companies.models import Company, Product, ProductLink
    from entitlements.models import Feature
    from metering.models import UsageEvent, UsageMeter

    call_command("migrate", verbosity=0)
    product, _ = Product.objects.get_or_create(code=PRODUCT_CODE, defaults={"name": "Bench delivery"})
    feature, _ = Feature.objects.get_or_create(
        product=product, code="tokens",
        defaults={"name": "Tokens", "kind": "metered", "unit": "token", "reset_period": "monthly",
                  "stripe_meter_event_name": "bench_tokens"},
    )
    company, _ = Company.objects.get_or_create(
        customer_pool=product.customer_pool, short_id="bench-delivery-co", defaults={"name": "Bench Delivery Co"}
    )
    ProductLink.objects.get_or_create(product=product, external_org_id="bench-delivery-org", defaults={"company": company})
    profile, _ = BillingProfile.objects.get_or_create(
        company=company, product=product, defaults={"stripe_customer_id": "cus_bench_delivery"}
    )
    now = timezone.now()
    meter, _ = UsageMeter.objects.get_or_create(
        company=company, feature=feature, period_start=now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    )
    existing = UsageEvent.objects.filter(feature=feature).count()
    missing = max(0, events - existing)
    for start in range(0, missing, 5000):
        UsageEvent.objects.bulk_create(
            [
                UsageEvent(
                    product=product, company=company, feature=feature, meter=meter, event_type="increment",
                    quantity=1, previous_value=0, new_value=1, billable_delta=1, event_time=now,
                    # Distinct creation times, as real traffic has.
                    created_at=now + timedelta(microseconds=start + offset), stripe_delivery_status="pending",
                )
                for offset in range(min(5000, missing - start))
            ]
        )
    return str(feature.pk), profile.stripe_customer_id


def _reset(feature_id: str, events: int) -> None:
    """Make exactly `events` of the bench events pending again (fresh for a run)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE metering_usageevent SET stripe_delivery_status = 'delivered' WHERE feature_id = %s", [feature_id]
        )
        cursor.execute(
            """UPDATE metering_usageevent SET stripe_delivery_status = 'pending', delivered_at = NULL,
                   stripe_delivery_attempts = 0, stripe_next_attempt_at = NULL, stripe_delivery_error = '',
                   event_time = now()
               WHERE id IN (SELECT id FROM metering_usageevent WHERE feature_id = %s ORDER BY created_at LIMIT %s)""",
            [feature_id, events],
        )
    # Steady state: autovacuum would have cleaned the queue index by now.
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE metering_usageevent")
    connection.close()


def _control(base: str, action: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{base}/_fake/{action}", data=json.dumps(body or {}).encode() if body is not None else None,
        method="POST" if body is not None else "GET", headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _start_fake(port: int) -> subprocess.Popen:
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.stripe_server", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    fake.stdout.readline()  # "Fake Stripe listening on …"
    return fake


def _floor(base: str, seconds: float = 3.0) -> float:
    """The fake's stream throughput with no database: one client, pre-built
    100-event batches, the same SDK call the service makes."""
    import stripe

    client = stripe.StripeClient(
        api_key="sk_test_bench", base_addresses={"api": base, "meter_events": base}, max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=10),
    )
    token = client.v2.billing.meter_event_session.create().authentication_token
    sent, counter, deadline = 0, 0, time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        events = [
            {"event_name": "bench_floor", "identifier": f"floor-{counter + i}", "timestamp": "2030-01-01T00:00:00Z",
             "payload": {"stripe_customer_id": "cus_floor", "value": "1"}}
            for i in range(100)
        ]
        counter += 100
        client.v2.billing.meter_event_stream.create(params={"events": events}, options={"api_key": token})
        sent += 100
    return sent / (time.perf_counter() - start)


def worker_main(args) -> None:
    """One worker process: wait for the common start time, deliver until the
    queue is empty, print a JSON line with its figures."""
    _django(args.database_url, stripe_base=args.stripe_base)
    from django.db import connection

    from billing.services.delivery import deliver_pending_usage

    connection.ensure_connection()
    while time.time() < args.start_at:
        time.sleep(0.001)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = deliver_pending_usage(batch_size=args.batch_size, worker=f"bench-{os.getpid()}")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(json.dumps({"delivered": result.delivered, "requests": result.requests, "elapsed": elapsed, "cpu": cpu,
                      "retry": result.retry_scheduled, "failed": result.failed}), flush=True)


def run(args) -> None:
    ensure_database(args.database_url)
    _django(args.database_url)
    log(f"seeding {args.events:,} pending usage events")
    feature_id, _ = _seed(args.events)
    fake = _start_fake(args.port)
    base = f"http://127.0.0.1:{args.port}"
    try:
        floor = _floor(base)
        print(f"fake Stripe stream floor (1 client, no DB): {floor:,.0f} events/s")
        for workers in args.workers:
            _control(base, "reset", {})
            _reset(feature_id, args.events)
            start_at = time.time() + 1.5
            processes = [
                subprocess.Popen(
                    [sys.executable, __file__, "--worker", "--database-url", args.database_url, "--stripe-base", base,
                     "--batch-size", str(args.batch_size), "--start-at", str(start_at)],
                    cwd=ROOT, stdout=subprocess.PIPE, text=True,
                )
                for _ in range(workers)
            ]
            outputs = [json.loads(process.communicate()[0].strip().splitlines()[-1]) for process in processes]
            wall = max(output["elapsed"] for output in outputs)
            delivered = sum(output["delivered"] for output in outputs)
            stats = _control(base, "stats")
            per_worker = ", ".join(f"{o['delivered'] / o['elapsed']:,.0f}" for o in outputs)
            cpu_per_event = sum(o["cpu"] for o in outputs) / max(1, delivered) * 1e6
            print(
                f"{workers} worker(s): {delivered:,} events in {wall:.2f}s = {delivered / wall:,.0f} events/s total "
                f"({delivered / wall / workers:,.0f}/worker; each: {per_worker}); "
                f"fake received {stats['meter_events']:,} unique, {stats['duplicate_meter_events']} duplicates; "
                f"worker CPU {cpu_per_event:.0f} µs/event"
            )
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_DELIVERY_EVENTS", 40000)))
    parser.add_argument("--batch-size", type=int, default=100, help="events claimed per transaction (sent 100 per request)")
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_FAKE_STRIPE_PORT", 0)) or None)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stripe-base", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args)
        return
    args.port = args.port or free_port()
    run(args)


if __name__ == "__main__":
    main()
