#!/usr/bin/env python
"""Stripe webhook ingestion throughput (issue 12): signed events posted to the
real receiving service, in process, against PostgreSQL and the fake Stripe
over real HTTP.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/saasdesk_bench python bench/webhooks.py
    options: --seconds 10 --intents 200   (make bench-webhooks)

Two figures from the same run, events/s:
- **floor**: signature check + store once by id (`webhook_event_verify` +
  `webhook_event_store`) — what receiving costs before any business logic;
- **ingest**: signature check + store + process (`webhook_event_receive`) of
  `payment_intent.succeeded` events of credit purchases: each re-reads the
  PaymentIntent and its charge from the fake Stripe over HTTP, locks the
  purchase and the wallet, lands the credits once (later events of the same
  PaymentIntent find them landed) and emits the notification.
The gap between them is the price of processing (mostly the two Stripe
re-reads). Nothing here asserts a timing."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import DEFAULT_DATABASE_URL, ensure_database, log  # noqa: E402

PRODUCT_CODE = "bench-webhooks"
SECRET = "whsec_bench_webhooks"


def _django(database_url: str, stripe_base: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ["DEBUG"] = "false"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.pop("REDIS_URL", None)
    os.environ["STRIPE_API_KEY"] = "sk_test_bench"
    os.environ["STRIPE_API_BASE"] = stripe_base
    os.environ["STRIPE_METER_EVENTS_API_BASE"] = stripe_base
    os.environ["STRIPE_WEBHOOK_SECRET"] = SECRET
    import django

    django.setup()
    import logging

    logging.getLogger("stripe").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _seed(fake, intents: int) -> list[str]:
    """A product, a company billed to a fake customer, and `intents` succeeded
    credit-purchase PaymentIntents (metadata as the purchase service writes it)."""
    from billing.models import BillingProfile
    from companies.models import Company, Product, ProductLink

    product, _ = Product.objects.get_or_create(code=PRODUCT_CODE, defaults={"name": "Bench webhooks"})
    company, _ = Company.objects.get_or_create(
        customer_pool=product.customer_pool, short_id="bench-webhooks-co", defaults={"name": "Bench Webhooks Co"})
    ProductLink.objects.get_or_create(product=product, external_org_id="bench-webhooks-org", defaults={"company": company})
    customer = fake.create_customer(email="bench@example.com")
    BillingProfile.objects.update_or_create(company=company, product=product,
                                            defaults={"stripe_customer_id": customer["id"]})
    card = fake.attach_payment_method(customer["id"], "pm_card_visa")
    metadata = {"kind": "saasdesk_credit_purchase", "company_id": str(company.pk), "product": product.code,
                "product_id": str(product.pk), "credits": "10", "origin": "api"}
    return [fake.create_payment_intent(amount=100, currency="eur", customer=customer["id"], payment_method=card["id"],
                                       confirm=True, metadata=metadata)["id"] for _ in range(intents)]


def _signed(fake, intent_id: str) -> tuple[bytes, str]:
    payload = json.dumps(fake.build_event("payment_intent.succeeded", intent_id)).encode()
    return payload, fake.sign_payload(payload, SECRET)


def _measure(name: str, seconds: float, fake, intents: list[str], step) -> float:
    """Prepare signed events ahead (not timed), then run `step` on them for `seconds`."""
    batch = [_signed(fake, intents[i % len(intents)]) for i in range(2000)]
    done, started, index = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        if index == len(batch):  # rare: signing more is not what is measured
            paused = time.perf_counter()
            batch, index = [_signed(fake, intents[i % len(intents)]) for i in range(2000)], 0
            started += time.perf_counter() - paused
        payload, signature = batch[index]
        index += 1
        step(payload, signature)
        done += 1
    rate = done / (time.perf_counter() - started)
    log(f"{name}: {done} events, {rate:,.0f} events/s")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_DURATION", "10")))
    parser.add_argument("--intents", type=int, default=200)
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    ensure_database(database_url)

    from tests.fakes.stripe_server import FakeStripe

    fake = FakeStripe(webhook_secret=SECRET).start()
    try:
        _django(database_url, fake.api_base)
        from billing.services.webhooks import webhook_event_receive, webhook_event_store, webhook_event_verify

        intents = _seed(fake, args.intents)

        def floor(payload, signature):
            webhook_event_store(event=webhook_event_verify(payload=payload, signature=signature))

        def ingest(payload, signature):
            webhook_event_receive(payload=payload, signature=signature)

        floor_rate = _measure("floor (verify + store)", args.seconds, fake, intents, floor)
        ingest_rate = _measure("ingest (verify + store + process)", args.seconds, fake, intents, ingest)
    finally:
        fake.stop()
    print(f"{'measure':40} {'events/s':>10}")
    print(f"{'floor: signature check + store':40} {floor_rate:>10,.0f}")
    print(f"{'ingest: + process (payment_intent.succeeded)':40} {ingest_rate:>10,.0f}")
    print(f"{'ingest / floor':40} {ingest_rate / floor_rate:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
