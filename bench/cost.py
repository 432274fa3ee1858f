#!/usr/bin/env python
"""CPU cost per request (or per event) of the hot paths, in one process, for
a machine too busy for wrk figures to mean anything: Django's CPU time
(`time.process_time`) plus the CPU time of its PostgreSQL backend (read from
/proc, so run it on the database host), divided by the work done. Wall-clock
throughput on a shared 2-core machine mostly measures the neighbours; CPU
time per unit of work moves much less with them, and on a CPU-bound server
it is what throughput is the inverse of. Nothing here asserts a timing.

    BENCH_DATABASE_URL=postgres://…/sd_bench python bench/cost.py track 500      # POST /usage/track
    … bench/cost.py floor 500        # bench.floors.FloorTrackApi (UPDATE … RETURNING + INSERT)
    … bench/cost.py batch 6          # POST /usage/track-batch, 500-event batches (cost per event)
    … bench/cost.py floor-batch 6    # bench.floors.FloorTrackBatchApi
    … bench/cost.py delivery 40      # claim 100 pending usage events + mark them delivered, N times
                                     # (metering.services.delivery, no Stripe: the database side of a pass)

Requests go through Django's test client with the production settings of
bench/track.py (API key auth, rate limit, Redis cache when BENCH_REDIS_URL
answers), seeded by bench/track.py's `seed()`; `delivery` uses bench/delivery.py's
product (run `make bench-delivery` once to seed it) and re-queues 5,000
delivered events first. Compare two versions by running both, interleaved,
on the same database."""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BenchConfig, django_setup  # noqa: E402

PATHS = {
    "track": "/api/v1/usage/track",
    "floor": "/bench/floor/track",
    "batch": "/api/v1/usage/track-batch",
    "floor-batch": "/bench/floor/track-batch",
}
BATCH_SIZE = 500


def _backend_cpu_reader():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    ticks = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    return read


def _requests(kind: str, count: int) -> tuple[float, float, float, int]:
    from django.test import Client

    from bench.track import seed

    data = seed()
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {data['key']}")
    prefix, counter = uuid.uuid4().hex[:12], itertools.count()
    real = kind in ("track", "batch")

    def event(n: int) -> dict:
        i = n % len(data["companies"])
        key = f"{prefix}-{next(counter)}"
        if real:
            return {"companyId": data["companies"][i], "featureCode": "tokens", "quantity": 1, "idempotencyKey": key}
        return {"meterId": data["meters"][i], "companyId": data["companies"][i], "productId": data["product_id"],
                "featureId": data["feature_id"], "quantity": 1, "idempotencyKey": key}

    batch = kind.endswith("batch")

    def one(n: int) -> None:
        body = {"events": [event(n * BATCH_SIZE + j) for j in range(BATCH_SIZE)]} if batch else event(n)
        response = client.post(PATHS[kind], json.dumps(body), content_type="application/json")
        assert response.status_code == 200, response.content[:300]

    for n in range(2 if batch else 20):  # warm: connections, caches, prepared statements
        one(n)
    backend = _backend_cpu_reader()
    b0, c0, t0 = backend(), time.process_time(), time.perf_counter()
    for n in range(count):
        one(n + 100)
    units = count * (BATCH_SIZE if batch else 1)
    return time.process_time() - c0, backend() - b0, time.perf_counter() - t0, units


def _delivery(count: int) -> tuple[float, float, float, int]:
    from django.db import connection, transaction
    from django.utils import timezone

    from billing.models import BillingProfile
    from metering.services.delivery import usage_deliveries_claim, usage_deliveries_delivered

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE metering_usageevent SET stripe_delivery_status = 'pending', stripe_next_attempt_at = NULL "
            "WHERE id IN (SELECT id FROM metering_usageevent WHERE stripe_delivery_status = 'delivered' "
            "ORDER BY created_at LIMIT 5000)"
        )
    backend = _backend_cpu_reader()
    b0, c0, t0 = backend(), time.process_time(), time.perf_counter()
    delivered, names, fresh_after = 0, {}, None
    for n in range(count):
        with transaction.atomic():
            claim = usage_deliveries_claim(
                company_ids=BillingProfile.objects.values("company_id"), accounts=BillingProfile.objects.all(),
                now=timezone.now(), batch_size=100, fresh_after=fresh_after, include_due=n == 0,
                meter_event_names=names,
            )
            fresh_after = claim.fresh_after
            if claim.events:
                kwargs = {"event_ids": [event.id for event in claim.events], "at": timezone.now()}
                try:
                    usage_deliveries_delivered(**kwargs, event_times=[event.event_time for event in claim.events])
                except TypeError:  # a version before outcomes took the events' times
                    usage_deliveries_delivered(**kwargs)
                delivered += len(claim.events)
    return time.process_time() - c0, backend() - b0, time.perf_counter() - t0, delivered


def main(argv: list[str]) -> int:
    kind, count = argv[0], int(argv[1]) if len(argv) > 1 else 300
    if kind not in (*PATHS, "delivery"):
        print(f"unknown {kind!r}; one of {', '.join((*PATHS, 'delivery'))}", file=sys.stderr)
        return 2
    django_setup(BenchConfig(), settings_module="bench.track_settings")
    python, postgres, wall, units = _delivery(count) if kind == "delivery" else _requests(kind, count)
    unit = "event" if kind in ("batch", "floor-batch", "delivery") else "request"
    print(
        f"{kind}: {units} {unit}s; per {unit}: python {1e6 * python / units:.0f} µs + postgres "
        f"{1e6 * postgres / units:.0f} µs = {1e6 * (python + postgres) / units:.0f} µs CPU "
        f"(wall {1e6 * wall / units:.0f} µs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
