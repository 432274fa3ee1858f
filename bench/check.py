#!/usr/bin/env python
"""The feature check under load: GET /api/v1/companies/{id}/features/{code}
served by gunicorn (production settings, DEBUG off) on PostgreSQL, next to a
floor measured in the same run by the same server — a bare DRF GET doing one
indexed query (bench.floors.FloorApi).

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/saasdesk_bench python bench/check.py
    options: --companies 500 --duration 10 --connections 16

Goals: the check reaches at least 70% of the floor's throughput with p99
under 10 ms at 16 connections (issue 3), and so does the check of a metered
feature, which also reads live usage (issue 9). Ratios are printed; nothing
here asserts."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    BenchConfig,
    django_setup,
    ensure_database,
    gunicorn,
    interleaved,
    log,
    lua_script,
    print_table,
    run_wrk,
)

PRODUCT_CODE = "bench-check"
SETTINGS = "bench.check_settings"


def seed(companies: int) -> tuple[list[str], list[str], str]:
    """The demo catalog under product `bench-check`, `companies` companies on
    the pro tier (idempotent), and a fresh API key. Returns (company ids,
    external org ids, raw key)."""
    from django.db import transaction

    from companies.models import Company, Product, ProductLink
    from companies.services import api_key_create
    from companies.actors import Actor
    from entitlements.catalog import catalog_load
    from entitlements.models import Tier
    from entitlements.services import tier_apply

    catalog = json.loads((Path(__file__).resolve().parent.parent / "entitlements/catalogs/demo.json").read_text())
    catalog["product"] = {"code": PRODUCT_CODE, "name": "Bench check"}
    catalog_load(data=catalog)
    product = Product.objects.get(code=PRODUCT_CODE)
    pro = Tier.objects.get(product=product, code="pro")
    ids, orgs = [], []
    with transaction.atomic():
        for index in range(companies):
            company, _ = Company.objects.get_or_create(
                short_id=f"bench-check-{index}", defaults={"name": f"Bench check {index}"}
            )
            link, _ = ProductLink.objects.get_or_create(
                product=product, external_org_id=f"bench-check-org-{index}", defaults={"company": company}
            )
            tier_apply(company=company, tier=pro, actor=Actor.system("bench"), reason="bench seed")
            ids.append(str(company.pk))
            orgs.append(link.external_org_id)
    _, raw_key = api_key_create(product=product, name="bench-check")
    return ids, orgs, raw_key


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--companies", type=int, default=500)
    parser.add_argument("--duration", type=int)
    parser.add_argument("--connections", type=int)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--latency-connections", type=int, default=2,
                        help="connections of the latency runs (below saturation), where p99 is judged (default 2)")
    args = parser.parse_args(argv)
    config = BenchConfig()
    if args.duration:
        config = replace(config, duration=args.duration)
    if args.connections:
        config = replace(config, connections=args.connections)

    ensure_database(config.database_url)
    log(f"database {config.database_url.rpartition('@')[2]}: migrate and seed {args.companies} companies")
    django_setup(config, settings_module=SETTINGS)
    ids, orgs, raw_key = seed(args.companies)
    auth = {"Authorization": f"Bearer {raw_key}"}
    env = config.server_env(settings_module=SETTINGS)
    log(f"cache: {'Redis ' + env['REDIS_URL'] if 'REDIS_URL' in env else 'local memory (per worker)'}")

    runs = [
        ("floor: DRF GET, 1 indexed query", lua_script(paths=[f"/bench/floor/{i}" for i in ids])),
        ("floor + API key auth and rate limit", lua_script(paths=[f"/bench/floor-auth/{i}" for i in ids], headers=auth)),
        ("check companies/{id}/features/sso", lua_script(paths=[f"/api/v1/companies/{i}/features/sso" for i in ids], headers=auth)),
        ("metered check companies/{id}/features/ai_credit", lua_script(paths=[f"/api/v1/companies/{i}/features/ai_credit" for i in ids], headers=auth)),
        ("check orgs/{externalOrgId}/features/sso", lua_script(paths=[f"/api/v1/orgs/{o}/features/sso" for o in orgs], headers=auth)),
    ]
    with gunicorn(config, env=env) as base_url:
        measured = interleaved(
            [(name, functools.partial(run_wrk, name, base_url, script, config)) for name, script in runs], args.rounds
        )
        # Latency is judged below saturation: with 16 connections on a saturated
        # server every request queues (p50 ≈ 16 / req/s, Little's law).
        latency_config = replace(config, connections=args.latency_connections)
        latency = [run_wrk(f"{name} @ {args.latency_connections} connections", base_url, script, latency_config)
                   for name, script in runs[2:4]]
    results = [measured[name] for name, _ in runs]
    floor, floor_auth = results[0], results[1]
    goals = {}
    for check, below in zip((results[2], results[3]), latency, strict=True):
        ratio = check.requests_per_sec / floor.requests_per_sec if floor.requests_per_sec else 0
        goals[check.name] = f"{ratio:.2f}× floor, p99 {below.p99_ms:.1f} ms below saturation (goal ≥ 0.70×, p99 < 10 ms): " + (
            "met" if ratio >= 0.7 and below.p99_ms < 10 else "MISSED"
        )
    cache_name = "Redis" if "REDIS_URL" in env else "local-memory"
    print(
        f"\nbench/check.py — {config.connections} connections, median of {args.rounds} × {config.duration}s, "
        f"{config.describe_server()}, PostgreSQL, {cache_name} cache, "
        f"load average before: {os.getloadavg()[0]:.1f}\n"
    )
    print_table(results, floor=floor, goals=goals)
    print(f"\nlatency below saturation ({args.latency_connections} connections, {config.duration}s):")
    for below in latency:
        print(f"  {below.name:<60} {below.requests_per_sec:>6.0f} req/s  p50 {below.p50_ms:.2f} ms  p99 {below.p99_ms:.2f} ms")
    for check in (results[2], results[3]):
        print(
            f"ratio {check.name}: {check.requests_per_sec / floor.requests_per_sec:.2f}× the floor, "
            f"{check.requests_per_sec / floor_auth.requests_per_sec:.2f}× the floor with auth"
            if floor.requests_per_sec and floor_auth.requests_per_sec
            else f"ratio {check.name}: n/a"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
