#!/usr/bin/env python
"""GET /usage/stats over 10 million raw events (issue 13, "Benchmark"): a
year of daily stats for one company, from the daily rollups, next to the
same answer computed from the raw usage events (the baseline), measured by
the same gunicorn server in the same run.

    BENCH_STATS_DATABASE_URL=postgres://postgres@127.0.0.1:5432/saasdesk_stats \
        python bench/stats.py [--events 10000000] [--companies 1] [--requests 100] [--raw-requests 5]

Loading (not through the API: 10 million tracks would take hours here):
  1. product `bench-stats`, a metered feature `tokens`, `--companies`
     companies (the first is measured), one meter each, an API key;
  2. the twelve monthly partitions of 2025 (`partition_create`);
  3. `--events` events spread evenly over 2025 (round robin over the
     companies), written by `INSERT … SELECT … FROM generate_series(…)` into
     the partitioned table in 1-million-row statements (session_replication_role
     = replica: no per-row foreign-key checks), then ANALYZE;
  4. the daily rollups built by `rollups_rebuild` — the function behind
     `manage.py backfill_rollups` (one INSERT … SELECT … GROUP BY).
The database is this benchmark's own: it is dropped and recreated unless it
already holds exactly this load (then the load is reused and says so).

Measured through HTTP (gunicorn, production settings, 4 sync workers, API key
auth) with sequential requests on one keep-alive connection, interleaved:
  - GET /api/v1/usage/stats?companyId=…&featureCode=tokens&from=2025-01-01&to=2026-01-01
    (365 rows from the rollups: one indexed query);
  - the baseline, GET /bench/raw/usage/stats with the same query
    (bench.floors.RawUsageStatsApi: same auth, validation and JSON, but one
    GROUP BY over the company's raw events of the year).
Both answers must be equal (checked). Printed: p50 / p99 / mean latency, the
ratio, and each query's server-side time from EXPLAIN ANALYZE. Nothing here
asserts a timing."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BenchConfig, django_setup, gunicorn, log  # noqa: E402

SETTINGS = "bench.track_settings"  # production settings + bench.urls (the baseline view)
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/saasdesk_stats"
PRODUCT_CODE = "bench-stats"
YEAR_START, YEAR_END = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 1_000_000

# Every NOT NULL column of metering_usageevent, in the order of the SELECT below.
_LOAD_SQL = """
INSERT INTO metering_usageevent (
    id, product_id, company_id, feature_id, meter_id, event_type, quantity, previous_value, new_value,
    quantity_limit, included_quantity, billable_delta, idempotency_key, request_fingerprint, event_time,
    created_at, source, performed_by, actor_kind, actor_id, actor_label, adjustment_reason, metadata,
    stripe_delivery_status, stripe_event_identifier, stripe_delivery_error, stripe_delivery_attempts)
SELECT gen_random_uuid(), %(product)s, (%(companies)s::uuid[])[1 + n %% %(k)s], %(feature)s,
       (%(meters)s::uuid[])[1 + n %% %(k)s], 'increment', 1 + n %% 5, 0, 1 + n %% 5,
       NULL, 0, 1 + n %% 5, NULL, '', t, t, 'api', '', '', '', '', '', '{}',
       'not_applicable', '', '', 0
FROM generate_series(%(first)s, %(last)s) AS n,
     LATERAL (SELECT %(start)s::timestamptz + (n::float8 / %(total)s) * (%(end)s::timestamptz - %(start)s::timestamptz) AS t) AS time
"""


def recreate_database(database_url: str) -> None:
    import psycopg

    base, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def loaded(database_url: str, events: int, companies: int) -> bool:
    """Whether the database already holds exactly this load."""
    import psycopg

    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT p.id, (SELECT COUNT(*) FROM metering_usageevent e WHERE e.product_id = p.id), "
                "(SELECT COUNT(DISTINCT company_id) FROM companies_productlink l WHERE l.product_id = p.id), "
                "(SELECT COALESCE(SUM(r.events), 0) FROM metering_usagedailyrollup r "
                " JOIN entitlements_feature f ON f.id = r.feature_id WHERE f.product_id = p.id) "
                "FROM companies_product p WHERE p.code = %s",
                (PRODUCT_CODE,),
            ).fetchone()
    except psycopg.Error:
        return False
    return bool(row) and row[1] == events and row[2] == companies and row[3] == events


def seed(companies: int) -> dict:
    from django.utils import timezone

    from companies.models import Company, Product, ProductLink
    from companies.services import api_key_create
    from entitlements.models import Feature, FeatureAccess
    from metering.periods import period_for
    from metering.services import meters_get_or_create

    product, _ = Product.objects.get_or_create(code=PRODUCT_CODE, defaults={"name": "Bench stats"})
    feature, _ = Feature.objects.get_or_create(
        product=product, code="tokens",
        defaults={"name": "Tokens", "kind": "metered", "unit": "token", "reset_period": "monthly"},
    )  # fmt: skip
    now = timezone.now()
    period = period_for(feature.reset_period, now)
    rows = []
    for n in range(companies):
        company, _ = Company.objects.get_or_create(short_id=f"bench-stats-{n}", defaults={"name": f"Bench Stats {n}"})
        ProductLink.objects.get_or_create(
            product=product, external_org_id=f"bench-stats-org-{n}", defaults={"company": company}
        )
        FeatureAccess.objects.update_or_create(
            company=company, feature=feature, defaults={"is_enabled": True, "quantity_limit": None}
        )
        rows.append(company)
    meters = meters_get_or_create(keys={(c.id, feature.id, period) for c in rows}, now=now)
    _, raw_key = api_key_create(product=product, name="bench/stats.py")
    return {
        "product": str(product.id),
        "feature": str(feature.id),
        "companies": [str(c.id) for c in rows],
        # The events of the year all point at the current meter: the FK needs a row, nothing reads it here.
        "meters": [str(meters[(c.id, feature.id, period.start)]) for c in rows],
        "key": raw_key,
    }


def load(data: dict, events: int) -> dict[str, float]:
    """Partitions, events, ANALYZE, rollups; the seconds each took."""
    from django.db import connection

    from metering.services import rollups_rebuild
    from metering.services.partitions import partition_create

    timings = {}
    started = time.perf_counter()
    for month in range(1, 13):
        partition_create(datetime(2025, month, 1, tzinfo=UTC))
    timings["create 12 monthly partitions"] = time.perf_counter() - started

    started = time.perf_counter()
    params = {
        "product": data["product"], "feature": data["feature"], "companies": data["companies"],
        "meters": data["meters"], "k": len(data["companies"]), "total": events,
        "start": YEAR_START, "end": YEAR_END,
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        # A bulk load: no per-row foreign-key checks (the ids above exist). No key trigger either; these
        # events have no idempotency key, so it would not fire anyway.
        cursor.execute("SET session_replication_role = replica")
        for first in range(0, events, CHUNK):
            last = min(events, first + CHUNK) - 1
            cursor.execute(_LOAD_SQL, {**params, "first": first, "last": last})
            log(f"loaded {last + 1:,} / {events:,} events ({time.perf_counter() - started:.0f}s)")
        cursor.execute("SET session_replication_role = origin")
    timings[f"INSERT … SELECT generate_series: {events:,} events"] = time.perf_counter() - started

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE metering_usageevent")
    timings["ANALYZE the event table"] = time.perf_counter() - started

    started = time.perf_counter()
    rows = sum(rollups_rebuild(company_id=company) for company in data["companies"])
    timings[f"rollups_rebuild (manage.py backfill_rollups): {rows:,} rollup rows"] = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE metering_usagedailyrollup")
    for name, seconds in timings.items():  # also on stderr now, in case the measurement fails later
        log(f"load: {name}: {seconds:,.1f} s")
    return timings


class Client:
    """One keep-alive HTTP connection with the API key."""

    def __init__(self, base_url: str, key: str):
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, path: str) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        return (time.perf_counter() - started) * 1000, response.status, body


def measure(base_url: str, data: dict, *, requests: int, raw_requests: int) -> dict[str, list[float]]:
    query = urlencode({
        "companyId": data["companies"][0], "featureCode": "tokens",
        "from": YEAR_START.date().isoformat(), "to": YEAR_END.date().isoformat(),
    })  # fmt: skip
    paths = {"stats": f"/api/v1/usage/stats?{query}", "raw": f"/bench/raw/usage/stats?{query}"}
    client = Client(base_url, data["key"])
    answers = {}
    for name, path in paths.items():  # warm-up, and the answers must agree
        _, status, body = client.get(path)
        if status != 200:
            raise SystemExit(f"{name}: {status} {body[:300]!r}")
        answers[name] = json.loads(body)["data"]
    if answers["stats"] != answers["raw"]:
        raise SystemExit("the rollups' answer differs from the raw events' answer")
    if len(answers["stats"]) != 365:
        raise SystemExit(f"expected 365 daily rows, got {len(answers['stats'])}")
    log(f"both answers equal: 365 days, {sum(row['events'] for row in answers['stats']):,} events of the company")
    samples: dict[str, list[float]] = {"stats": [], "raw": []}
    per_raw = max(1, requests // raw_requests)
    while len(samples["stats"]) < requests or len(samples["raw"]) < raw_requests:
        for _ in range(per_raw):
            if len(samples["stats"]) < requests:
                samples["stats"].append(client.get(paths["stats"])[0])
        if len(samples["raw"]) < raw_requests:
            samples["raw"].append(client.get(paths["raw"])[0])
    return samples


def explain(data: dict) -> dict[str, float]:
    """Server-side time (planning + execution, ms) of each query, from EXPLAIN ANALYZE."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.floors import _RAW_STATS_SQL
    from insights.selectors import usage_stats

    with CaptureQueriesContext(connection) as captured:
        usage_stats(product_id=data["product"], company_id=data["companies"][0], start=YEAR_START, end=YEAR_END,
                    feature_code="tokens")  # fmt: skip
    stats_sql = captured.captured_queries[-1]["sql"]
    out = {}
    with connection.cursor() as cursor:
        for name, sql, params in (
            ("stats (rollups)", stats_sql, None),
            ("raw events", _RAW_STATS_SQL.format(feature="AND f.code = %s"),
             [data["companies"][0], data["product"], YEAR_START, YEAR_END, "tokens", 1001]),
        ):  # fmt: skip
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            plan = cursor.fetchone()[0]
            plan = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
            out[name] = plan["Planning Time"] + plan["Execution Time"]
    return out


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--companies", type=int, default=1, help="the events are spread over them; the first is measured")
    parser.add_argument("--requests", type=int, default=100, help="stats requests")
    parser.add_argument("--raw-requests", type=int, default=5, help="baseline requests")
    args = parser.parse_args(argv)
    config = replace(BenchConfig(), database_url=os.environ.get("BENCH_STATS_DATABASE_URL", DEFAULT_URL))

    reuse = loaded(config.database_url, args.events, args.companies)
    if not reuse:
        recreate_database(config.database_url)
    django_setup(config, settings_module=SETTINGS)
    data = seed(args.companies)
    if reuse:
        log(f"reusing the {args.events:,} events and their rollups already loaded in {config.database_url}")
        timings = {}
    else:
        timings = load(data, args.events)
    env = config.server_env(settings_module=SETTINGS)
    with gunicorn(config, env=env, startup_timeout=180) as base_url:
        samples = measure(base_url, data, requests=args.requests, raw_requests=args.raw_requests)
    server = explain(data)

    share = args.events // args.companies
    print(f"\n/usage/stats, a year of daily stats for one company ({share:,} of its events; "
          f"{args.events:,} events in the table), {config.describe_server()}, sequential requests")
    for name, seconds in timings.items():
        print(f"load: {name}: {seconds:,.1f} s")
    header = f"{'query':<40} {'requests':>8} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9} {'SQL ms':>9}"
    print(header)
    print("-" * len(header))
    rows = (("GET /usage/stats (daily rollups)", "stats", "stats (rollups)"),
            ("baseline: same answer from raw events", "raw", "raw events"))  # fmt: skip
    for label, key, sql_key in rows:
        values = samples[key]
        print(f"{label:<40} {len(values):>8} {statistics.median(values):>9.1f} {_p(values, 0.99):>9.1f} "
              f"{statistics.fmean(values):>9.1f} {server[sql_key]:>9.1f}")
    ratio = statistics.median(samples["raw"]) / statistics.median(samples["stats"])
    print(f"ratio: the baseline takes {ratio:,.0f}× the stats endpoint's p50")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
