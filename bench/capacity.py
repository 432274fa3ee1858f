#!/usr/bin/env python
"""Capacity of one PostgreSQL primary for usage events (issue 16, SPEC §10,
docs/scaling.md). Not part of `bench/run.py all` (it runs for as long as the
event count asks): `python bench/run.py capacity` or

    BENCH_CAPACITY_DATABASE_URL=postgres://postgres@127.0.0.1:5432/saasdesk_capacity \
        python bench/capacity.py --events 10000000 --batch-size 500 --clients 4 --slices 10

Ingests `--events` events through POST /api/v1/usage/track-batch (gunicorn,
production settings, every event with a unique idempotency key, spread over 64
companies) and reports:
  - events/s per slice of the ingest as the table grows (first vs last slice);
  - at that size: p50/p99 of a feature check (GET companies/{id}/features/tokens),
    a single track (POST usage/track) and a history read (GET usage/history);
  - the time to create an empty month partition, to create one while the
    DEFAULT partition holds rows of that month, and to drop a month;
  - table and index bytes per million events (all partitions + the key table).
The database is dropped and recreated first (it is this benchmark's own).
Nothing here asserts a timing."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BenchConfig, django_setup, gunicorn, log  # noqa: E402

SETTINGS = "bench.track_settings"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/saasdesk_capacity"


def recreate_database(database_url: str) -> None:
    import psycopg

    base, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


class Client:
    """One keep-alive HTTP connection with the API key."""

    def __init__(self, base_url: str, key: str):
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()


def ingest(base_url: str, data: dict, *, events: int, batch_size: int, clients: int, slices: int) -> list[float]:
    """events/s of each slice of the ingest."""
    companies = data["companies"]
    batches = max(1, events // batch_size)
    per_slice = max(1, batches // slices)
    next_batch = [0]
    lock = threading.Lock()
    limit = [0]  # batches below this number belong to the running slice
    errors: list[str] = []
    run = uuid.uuid4().hex[:8]

    def worker() -> None:
        client = Client(base_url, data["key"])
        while True:
            with lock:
                if next_batch[0] >= limit[0]:
                    return
                number = next_batch[0]
                next_batch[0] += 1
            body = {
                "events": [
                    {
                        "companyId": companies[(number * batch_size + n) % len(companies)],
                        "featureCode": "tokens",
                        "quantity": 1,
                        "idempotencyKey": f"{run}-{number}-{n}",
                    }
                    for n in range(batch_size)
                ]
            }
            status, answer = client.call("POST", "/api/v1/usage/track-batch", body)
            if status != 200 and not errors:
                errors.append(f"{status}: {answer[:300]!r}")

    rates = []
    for index in range(slices):
        limit[0] = batches if index == slices - 1 else (index + 1) * per_slice
        first = index * per_slice
        started = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        rates.append((limit[0] - first) * batch_size / elapsed)
        log(f"slice {index + 1}/{slices}: {(limit[0] - first) * batch_size} events in {elapsed:.1f}s "
            f"= {rates[-1]:,.0f} events/s (table now {limit[0] * batch_size:,})")
        if errors:
            log(f"first error: {errors[0]}")
    return rates


def latencies(base_url: str, data: dict, *, requests: int = 300) -> dict[str, tuple[float, float]]:
    client = Client(base_url, data["key"])
    company = data["companies"][0]
    calls = {
        "check": ("GET", f"/api/v1/companies/{company}/features/tokens", None),
        "track": ("POST", "/api/v1/usage/track", None),
        "history": ("GET", f"/api/v1/usage/history?companyId={company}&featureCode=tokens", None),
    }
    out = {}
    for name, (method, path, _) in calls.items():
        samples = []
        for n in range(requests):
            body = None
            if name == "track":
                body = {"companyId": company, "featureCode": "tokens", "quantity": 1, "idempotencyKey": uuid.uuid4().hex}
            started = time.perf_counter()
            status, answer = client.call(method, path, body)
            samples.append((time.perf_counter() - started) * 1000)
            if status != 200 and n == 0:
                log(f"{name}: {status} {answer[:200]!r}")
        samples.sort()
        out[name] = (statistics.median(samples), samples[int(len(samples) * 0.99) - 1])
    return out


def partition_timings() -> dict[str, float]:
    """Create an empty month, create a month whose rows sit in DEFAULT, drop a month."""
    from datetime import UTC, datetime

    from django.db import connection

    from metering.models import UsageEvent
    from metering.services.partitions import DEFAULT_PARTITION, TABLE, partition_create, partition_name

    out = {}
    started = time.perf_counter()
    partition_create(datetime(2099, 1, 1, tzinfo=UTC))
    out["create empty month (ms)"] = (time.perf_counter() - started) * 1000
    # 10,000 copies of existing events dated 2098-06 land in DEFAULT, then the month is created.
    with connection.cursor() as cursor:
        columns = [f.column for f in UsageEvent._meta.concrete_fields]
        select = ", ".join(
            "gen_random_uuid()" if c == "id" else "NULL" if c == "idempotency_key"
            else "TIMESTAMPTZ '2098-06-15 00:00:00+00'" if c == "event_time" else c
            for c in columns
        )
        cursor.execute(f"INSERT INTO {TABLE} ({', '.join(columns)}) SELECT {select} FROM {TABLE} LIMIT 10000")
        moved = cursor.rowcount
        cursor.execute(f"ANALYZE {DEFAULT_PARTITION}")
    started = time.perf_counter()
    partition_create(datetime(2098, 6, 1, tzinfo=UTC))
    out[f"create month moving {moved:,} rows out of DEFAULT (ms)"] = (time.perf_counter() - started) * 1000
    with connection.cursor() as cursor:
        started = time.perf_counter()
        name = partition_name(datetime(2098, 6, 1, tzinfo=UTC))
        cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
        cursor.execute(f"DROP TABLE {name}")
        out[f"drop month of {moved:,} rows (ms)"] = (time.perf_counter() - started) * 1000
    return out


def sizes() -> dict[str, float]:
    from django.db import connection

    from metering.models import UsageEvent, UsageEventKey
    from metering.services.partitions import TABLE

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT SUM(pg_table_size(relid)), SUM(pg_indexes_size(relid)) FROM pg_partition_tree(%s)", [TABLE]
        )
        table, indexes = (int(value) for value in cursor.fetchone())
        key_table = UsageEventKey._meta.db_table
        cursor.execute("SELECT pg_table_size(%s), pg_indexes_size(%s)", [key_table, key_table])
        key_bytes, key_index = (int(value) for value in cursor.fetchone())
    count = UsageEvent.objects.count()
    per_million = 1_000_000 / max(count, 1)
    return {
        "events": count,
        "event table MB per million": table * per_million / 2**20,
        "event indexes MB per million": indexes * per_million / 2**20,
        "key table MB per million (table + indexes)": (key_bytes + key_index) * per_million / 2**20,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4, help="concurrent track-batch connections")
    parser.add_argument("--slices", type=int, default=10)
    args = parser.parse_args(argv)
    config = replace(BenchConfig(), database_url=os.environ.get("BENCH_CAPACITY_DATABASE_URL", DEFAULT_URL))
    recreate_database(config.database_url)
    django_setup(config, settings_module=SETTINGS)
    from bench.track import seed

    data = seed()
    env = config.server_env(settings_module=SETTINGS)
    log(f"{config.describe_server()}; {args.events:,} events in batches of {args.batch_size} from {args.clients} clients")
    with gunicorn(config, env=env) as base_url:
        rates = ingest(
            base_url, data, events=args.events, batch_size=args.batch_size, clients=args.clients, slices=args.slices
        )
        timings = latencies(base_url, data)
    print(f"\ningest events/s: first slice {rates[0]:,.0f}, last slice {rates[-1]:,.0f} "
          f"(last/first {rates[-1] / rates[0]:.2f})")
    for name, (p50, p99) in timings.items():
        print(f"{name:8s} p50 {p50:.1f} ms  p99 {p99:.1f} ms")
    for name, value in partition_timings().items():
        print(f"{name}: {value:.1f}")
    for name, value in sizes().items():
        print(f"{name}: {value:,.1f}" if isinstance(value, float) else f"{name}: {value:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
