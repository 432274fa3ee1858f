#!/usr/bin/env python
"""Notifications (issue 10): webhook delivery throughput and the cost of the
usage-alert check on POST /usage/track. Nothing here asserts a timing.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/saasdesk_bench python bench/notifications.py
    options: --events 2000 --workers 1,2 --batch-size 50 --duration 10 --only delivery,track

Runs:
  delivery  N events for one endpoint whose receiver (tests/notifications/receiver.py,
            its own process on 127.0.0.1) answers 200 at once; the real delivery
            service (`deliveries_run`: SKIP LOCKED claims with a lease, signed POST,
            one attempt row per send) drains them with 1, 2, … worker threads:
            events/s in total and per worker.
  track     POST /usage/track (gunicorn, wrk) on three features of one product:
            `unlimited` (no limit: the alert hook returns at once), `limited`
            (a limit so high that no threshold is crossed: the hook's arithmetic)
            without any endpoint, and `limited` again after an endpoint was
            registered. Goal: the alert check costs < 5 % (ratio ≥ 0.95)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BenchConfig, django_setup, ensure_database, free_port, gunicorn, log, print_table, run_wrk  # noqa: E402
from bench.track import TRACK  # noqa: E402
from bench.track import _script as track_script  # noqa: E402

PRODUCT_CODE = "bench-notify"
SETTINGS = "bench.track_settings"
COMPANIES = 64
HUGE_LIMIT = 10**15


# --- delivery throughput -----------------------------------------------------------------------


def _receiver(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.notifications.receiver", "--port", str(port), "--quiet"],
        cwd=str(Path(__file__).resolve().parent.parent),
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    import socket

    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the receiver did not start")


def _seed_events(product, endpoint, count: int) -> None:
    """`count` events with one pending delivery each, written like event_emit
    does but without enqueueing (the workers below drain them)."""
    from django.db import transaction

    import notifications.services.events as events_module

    enqueue = events_module.enqueue_event_delivery
    events_module.enqueue_event_delivery = lambda event_id: None
    try:
        with transaction.atomic():
            for n in range(count):
                events_module.event_emit(product=product, type="usage.threshold_reached", data={"n": n, "bench": True})
    finally:
        events_module.enqueue_event_delivery = enqueue


def bench_delivery(*, events: int, workers: list[int], batch_size: int) -> None:
    from django.db import connection

    from companies.models import Product
    from notifications.models import Delivery, DeliveryStatus, WebhookEndpoint
    from notifications.services import deliveries_run, endpoint_create

    product, _ = Product.objects.get_or_create(code=PRODUCT_CODE, defaults={"name": "Bench notify"})
    port = free_port()
    receiver = _receiver(port)
    try:
        WebhookEndpoint.objects.filter(product=product).delete()
        endpoint = endpoint_create(product=product, url=f"http://127.0.0.1:{port}/hooks")
        print(f"\nwebhook delivery to a local receiver, {events} events, batches of {batch_size}")
        for worker_count in workers:
            Delivery.objects.filter(endpoint=endpoint).delete()
            _seed_events(product, endpoint, events)
            results = []

            def worker():
                try:
                    results.append(deliveries_run(batch_size=batch_size))
                finally:
                    connection.close()

            threads = [threading.Thread(target=worker) for _ in range(worker_count)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            delivered = Delivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.SUCCEEDED).count()
            attempts = sum(result.attempted for result in results)
            rate = delivered / elapsed if elapsed else 0.0
            print(
                f"{worker_count} worker(s): {delivered}/{events} delivered in {elapsed:.2f} s = {rate:,.0f} events/s "
                f"({rate / worker_count:,.0f} per worker); attempts {attempts} (duplicates {attempts - delivered})"
            )
        WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)


# --- the alert check on /usage/track ----------------------------------------------------------


def seed_track() -> dict:
    from django.utils import timezone

    from companies.models import Company, Product, ProductLink
    from companies.services import api_key_create
    from entitlements.models import Feature, FeatureAccess
    from metering.periods import period_for
    from metering.services import meters_get_or_create
    from notifications.models import WebhookEndpoint

    product, _ = Product.objects.get_or_create(code=PRODUCT_CODE, defaults={"name": "Bench notify"})
    WebhookEndpoint.objects.filter(product=product).delete()
    features = {}
    for code, limit in (("unlimited", None), ("limited", HUGE_LIMIT)):
        features[code], _ = Feature.objects.get_or_create(
            product=product,
            code=code,
            defaults={"name": code.title(), "kind": "metered", "unit": "unit", "reset_period": "monthly"},
        )
    now = timezone.now()
    companies = []
    for n in range(COMPANIES):
        company, _ = Company.objects.get_or_create(short_id=f"bench-notify-{n}", defaults={"name": f"Bench Notify {n}"})
        ProductLink.objects.get_or_create(product=product, external_org_id=f"bench-notify-org-{n}", defaults={"company": company})
        for code, limit in (("unlimited", None), ("limited", HUGE_LIMIT)):
            FeatureAccess.objects.update_or_create(
                company=company, feature=features[code], defaults={"is_enabled": True, "quantity_limit": limit}
            )
        companies.append(company)
    for feature in features.values():
        period = period_for(feature.reset_period, now)
        meters_get_or_create(keys={(c.id, feature.id, period) for c in companies}, now=now)
    _, raw_key = api_key_create(product=product, name="bench/notifications.py")
    return {"product": product, "companies": [str(c.id) for c in companies], "key": raw_key}


def bench_track(config: BenchConfig) -> None:
    from notifications.services import endpoint_create

    data = seed_track()
    # bench/track.py's wrk script (unique idempotency keys per request), on this product's features.
    seed_data = {**data, "meters": data["companies"], "product_id": str(data["product"].pk), "feature_id": ""}

    def script(feature: str) -> str:
        body = TRACK.replace('"featureCode":"tokens"', f'"featureCode":"{feature}"')
        return track_script(seed_data, request_body=body)

    env = config.server_env(settings_module=SETTINGS)
    with gunicorn(config, env=env) as base_url:
        unlimited = run_wrk("track, no limit (hook returns at once)", base_url, script("unlimited"), config)
        limited = run_wrk("track, limit, no endpoint", base_url, script("limited"), config)
        endpoint = endpoint_create(product=data["product"], url="https://hooks.example.com/bench")
        try:
            with_endpoint = run_wrk("track, limit, one endpoint", base_url, script("limited"), config)
        finally:
            endpoint.delete()
    print(f"\nPOST /usage/track and the usage-alert check, {config.connections} connections over {COMPANIES} companies")
    print_table([limited, with_endpoint], floor=unlimited)
    ratio = with_endpoint.requests_per_sec / limited.requests_per_sec if limited.requests_per_sec else 0.0
    print(f"with / without an endpoint: {ratio:.3f} (goal ≥ 0.95)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--duration", type=int, default=None, help="seconds per wrk measurement (default BENCH_DURATION)")
    parser.add_argument("--only", default="delivery,track")
    args = parser.parse_args(argv)
    config = BenchConfig()
    if args.duration:
        config = replace(config, duration=args.duration)
    runs = set(args.only.split(","))
    # The receiver is plain HTTP on 127.0.0.1: allow it (production settings refuse both).
    os.environ["NOTIFICATIONS_ALLOW_PRIVATE_TARGETS"] = "true"
    os.environ["NOTIFICATIONS_REQUIRE_HTTPS"] = "false"
    ensure_database(config.database_url)
    django_setup(config, settings_module=SETTINGS)
    if "delivery" in runs:
        bench_delivery(events=args.events, workers=[int(n) for n in args.workers.split(",")], batch_size=args.batch_size)
    if "track" in runs:
        bench_track(config)
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
