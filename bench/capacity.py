#!/usr/bin/env python
"""Capacity of one PostgreSQL primary for usage events (issue 16, SPEC §10,
docs/scaling.md). Not part of `bench/run.py all` (it runs for as long as the
event count asks): `python bench/run.py capacity` or

    BENCH_CAPACITY_DATABASE_URL=postgres://postgres@127.0.0.1:5432/saasdesk_capacity \
        nice -n 10 python bench/capacity.py --events 20000000 --max-minutes 80 --clients 4

Ingests `--events` events through POST /api/v1/usage/track-batch (gunicorn,
production settings, every event with a unique idempotency key, spread over 64
companies, each client connection tracking for its own 64/clients of them) — or as many as `--max-minutes` allow — and reports:
  - events/s per slice of `--slice-events` (default one million) as the table
    grows (first vs last slice), with a short probe of the check's and the
    single track's latency after each slice;
  - at the final size: p50/p99 of a feature check (GET companies/{id}/features/tokens),
    a single track (POST usage/track), a history read (GET usage/history) and
    the stats query (GET usage/stats, a year of daily stats of one company),
    next to that stats answer computed from the raw events (bench/stats.py's
    baseline view);
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


def bulk_clone(target: int, *, minutes: float = 0, chunk: int = 1_000_000) -> dict[str, float]:
    """Grow the event table to `target` rows with SQL, not HTTP: copies of
    the events the API wrote (each with a new id and idempotency key, same
    company, feature, meter, fingerprint, times), and their key rows, in
    1-million-row `INSERT … SELECT … generate_series` statements run with
    `session_replication_role = replica` (no per-row foreign-key checks or key
    trigger: the key rows are written by the same statement). Rollups are then
    rebuilt (`rollups_rebuild`, the backfill) so they equal the events again.
    Stops early after `minutes` (0: no limit). Returns the seconds each step took."""
    from django.db import connection

    from metering.models import UsageEvent
    from metering.services import rollups_rebuild
    from metering.services.partitions import TABLE

    columns = [f.column for f in UsageEvent._meta.concrete_fields]
    select = ", ".join(
        "g.nid" if c == "id" else "t.idempotency_key || '-b' || g.n" if c == "idempotency_key"
        else "g.nid::text" if c == "stripe_event_identifier" else f"t.{c}"
        for c in columns
    )
    out = {}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET synchronous_commit = off")
        cursor.execute(
            f"CREATE TEMP TABLE bulk_template AS SELECT (row_number() OVER ()) - 1 AS rn, * FROM {TABLE} "
            "WHERE idempotency_key IS NOT NULL LIMIT 100000"
        )
        cursor.execute("SELECT COUNT(*) FROM bulk_template")
        (templates,) = cursor.fetchone()
        cursor.execute(f"SELECT COUNT(*) FROM {TABLE}")
        (current,) = cursor.fetchone()
        first = current
        stop = time.monotonic() + minutes * 60 if minutes else float("inf")
        while current < target and time.monotonic() < stop:
            size = min(chunk, target - current)
            cursor.execute(
                f"WITH ins AS (INSERT INTO {TABLE} ({', '.join(columns)}) SELECT {select} "
                f"FROM (SELECT n, gen_random_uuid() AS nid FROM generate_series(%s, %s) AS n) AS g "
                f"JOIN bulk_template t ON t.rn = g.n %% %s "
                "RETURNING product_id, idempotency_key, id, event_time) "
                "INSERT INTO metering_usageeventkey (product_id, idempotency_key, event_id, event_time) "
                "SELECT * FROM ins",
                [current, current + size - 1, templates],
            )
            current += size
            log(f"bulk: table at {current:,} events ({time.perf_counter() - started:.0f} s)")
        cursor.execute("SET session_replication_role = origin")
        cursor.execute("DROP TABLE bulk_template")
    out["_events"] = current
    out[f"bulk SQL copy of {current - first:,} events + keys"] = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")
    out["ANALYZE"] = time.perf_counter() - started
    started = time.perf_counter()
    rows = rollups_rebuild()
    out[f"rollups_rebuild over {current:,} events ({rows:,} rows)"] = time.perf_counter() - started
    for name, seconds in out.items():
        if not name.startswith("_"):
            log(f"bulk: {name}: {seconds:.0f} s")
    connection.close()
    return out


def ingest(base_url: str, data: dict, *, events: int, batch_size: int, clients: int, slice_events: int,
           deadline: float, bulk_at: int = 0, bulk_to: int = 0, bulk_minutes: float = 0,
           bulk_timings: dict | None = None) -> list[tuple[int, float, float]]:
    """(events in the table after the slice, events/s of the slice, seconds)
    of each slice of the ingest; stops early at `deadline` (monotonic). Once
    the API has written `bulk_at` events, `bulk_clone` grows the table to
    `bulk_to` (0: never)."""
    bulk = [0]  # events written by SQL, not the API
    companies = data["companies"]
    batches = max(1, events // batch_size)
    per_slice = max(1, slice_events // batch_size)
    slices = -(-batches // per_slice)
    next_batch = [0]
    lock = threading.Lock()
    limit = [0]  # batches below this number belong to the running slice
    errors: list[str] = []
    run = uuid.uuid4().hex[:8]

    # Each client tracks for its own group of companies, as separate integrations
    # would: batches of different clients never wait on each other's meter rows.
    group = max(1, len(companies) // clients)

    def worker(client: int) -> None:
        mine = companies[client * group : (client + 1) * group] or companies
        client = Client(base_url, data["key"])
        while True:
            with lock:
                if next_batch[0] >= limit[0] or time.monotonic() > deadline:
                    return
                number = next_batch[0]
                next_batch[0] += 1
            body = {
                "events": [
                    {
                        "companyId": mine[(number * batch_size + n) % len(mine)],
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
        limit[0] = min(batches, (index + 1) * per_slice)
        first = next_batch[0]
        started = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(client,)) for client in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        done = (next_batch[0] - first) * batch_size
        rates.append((next_batch[0] * batch_size + bulk[0], done / elapsed, elapsed))
        probe = latencies(base_url, data, requests=20, names=("check", "track"))
        log(f"slice {index + 1}/{slices}: {done:,} events in {elapsed:.1f}s = {rates[-1][1]:,.0f} events/s "
            f"(table now {rates[-1][0]:,}); check p50 {probe['check'][0]:.1f} ms, "
            f"track p50 {probe['track'][0]:.1f} ms; load average {os.getloadavg()[0]:.1f}")
        if errors:
            log(f"first error: {errors[0]}")
        if time.monotonic() > deadline:
            log("time budget reached: ingest stopped")
            break
        if bulk_to and not bulk[0] and next_batch[0] * batch_size >= bulk_at:
            bulk_timings.update(bulk_clone(bulk_to, minutes=bulk_minutes))
            bulk[0] = bulk_timings.pop("_events") - next_batch[0] * batch_size
    return rates


def latencies(base_url: str, data: dict, *, requests: int = 300,
              names: tuple[str, ...] = ("check", "track", "history", "stats", "stats-raw")) -> dict[str, tuple[float, float]]:
    from datetime import UTC, datetime, timedelta

    client = Client(base_url, data["key"])
    company = data["companies"][0]
    today = datetime.now(UTC).date()
    year = f"companyId={company}&featureCode=tokens&from={today - timedelta(days=364)}&to={today + timedelta(days=1)}"
    calls = {
        "check": ("GET", f"/api/v1/companies/{company}/features/tokens", None),
        "track": ("POST", "/api/v1/usage/track", None),
        "history": ("GET", f"/api/v1/usage/history?companyId={company}&featureCode=tokens", None),
        "stats": ("GET", f"/api/v1/usage/stats?{year}", None),
        "stats-raw": ("GET", f"/bench/raw/usage/stats?{year}", None),
    }
    out = {}
    for name in names:
        method, path, _ = calls[name]
        if name == "stats-raw":
            requests = min(requests, 5)
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
        out[name] = (statistics.median(samples), samples[max(0, int(len(samples) * 0.99) - 1)])
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
    sys.stdout.reconfigure(line_buffering=True)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4, help="concurrent track-batch connections")
    parser.add_argument("--slice-events", type=int, default=1_000_000, help="events per reported slice")
    parser.add_argument("--max-minutes", type=float, default=0, help="stop the ingest after this long (0: no limit)")
    parser.add_argument("--bulk-at", type=int, default=0, help="after this many API events, grow the table by SQL …")
    parser.add_argument("--bulk-to", type=int, default=0, help="… to this many events (0: API only)")
    parser.add_argument("--bulk-minutes", type=float, default=0, help="… or for at most this long (0: no limit)")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.max_minutes * 60 if args.max_minutes else float("inf")
    config = replace(BenchConfig(), database_url=os.environ.get("BENCH_CAPACITY_DATABASE_URL", DEFAULT_URL))
    recreate_database(config.database_url)
    django_setup(config, settings_module=SETTINGS)
    from bench.track import seed

    data = seed()
    env = config.server_env(settings_module=SETTINGS)
    log(f"{config.describe_server()}; {args.events:,} events in batches of {args.batch_size} from {args.clients} clients")
    started = time.perf_counter()
    bulk_timings: dict[str, float] = {}
    with gunicorn(config, env=env, startup_timeout=180) as base_url:
        rates = ingest(
            base_url, data, events=args.events, batch_size=args.batch_size, clients=args.clients,
            slice_events=args.slice_events, deadline=deadline, bulk_at=args.bulk_at, bulk_to=args.bulk_to,
            bulk_minutes=args.bulk_minutes, bulk_timings=bulk_timings,
        )
        total = time.perf_counter() - started
        timings = latencies(base_url, data)
    bulk_seconds = sum(bulk_timings.values())
    api_events = sum(rate * seconds for _, rate, seconds in rates)
    api_seconds = sum(seconds for _, _, seconds in rates)
    print(f"\ntable: {rates[-1][0]:,} events; through the API: {api_events:,.0f} events in {api_seconds / 60:.1f} min "
          f"= {api_events / api_seconds:,.0f} events/s on average (wall clock {(total - bulk_seconds) / 60:.1f} min "
          f"with the probes)")
    for name, seconds in bulk_timings.items():
        print(f"bulk (SQL, not the API): {name}: {seconds:,.0f} s")
    print(f"ingest events/s: first slice {rates[0][1]:,.0f}, last slice {rates[-1][1]:,.0f} "
          f"(last/first {rates[-1][1] / rates[0][1]:.2f})")
    for size, rate, seconds in rates:
        print(f"  up to {size:>12,} events: {rate:>8,.0f} events/s ({seconds:.0f} s)")
    for name, (p50, p99) in timings.items():
        print(f"{name:10s} p50 {p50:.1f} ms  p99 {p99:.1f} ms")

    for name, value in partition_timings().items():
        print(f"{name}: {value:.1f}")
    for name, value in sizes().items():
        print(f"{name}: {value:,.1f}" if isinstance(value, float) else f"{name}: {value:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
