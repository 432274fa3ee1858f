#!/usr/bin/env python
"""Usage tracking under load: gunicorn (production settings, DEBUG off) on
PostgreSQL, driven by wrk, each figure next to a floor measured in the same
run by the same server.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/saasdesk_bench python bench/track.py
    options: --duration 10 --connections 16 --batch-size 500 --batch-connections 4 --only single,batch,hot

Runs:
  single  POST /api/v1/usage/track, one event per request, over 64 companies
          (no row contention): req/s, p50, p99 — vs the floor, a bare DRF view
          doing one conditional counter UPDATE … RETURNING + one event INSERT
          (bench.floors; no auth, validation, idempotency or periods),
          and the same floor behind the API's key auth and rate limit.
          Goal (issue 9): ≥ 0.75× the floor. Single and batch: median of --rounds (3)
          interleaved rounds.
  batch   POST /api/v1/usage/track-batch, 500-event batches from 4
          connections: events/s, vs a floor that parses the events, runs one
          UPDATE … RETURNING per company's meter and one multi-row INSERT
          (bench.floors.FloorTrackBatchApi). Goal (issue 9): ≥ 0.5× the floor
          and ≥ 15,000 events/s on this 2-core machine.
  hot     16 connections on one company × feature (every request waits for
          the same row lock), vs the floor on one meter row.
  dims    POST /usage/track of a feature with three dimensions (model,
          platform, region: three dimension-rollup rows per event) vs the same
          feature without dimensions, same metadata, runs interleaved
          (without, with, × --dims-rounds). Goal (issue 15): with ≥ 0.90× without.
Every event carries a unique idempotency key (random per wrk thread +
counter), so nothing is a replay. Settings (database, Redis, workers…) come
from bench/common.py's environment. Nothing here asserts a timing."""

from __future__ import annotations

import argparse
import functools
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
    print_table,
    run_wrk,
)

PRODUCT_CODE = "bench-track"
DIMENSIONS = ("model", "platform", "region")
SETTINGS = "bench.track_settings"
COMPANIES = 64


def seed() -> dict:
    """Product `bench-track`, an unlimited monthly metered feature, 64 linked
    companies with access and an open meter each (idempotent), and a fresh
    API key."""
    from django.utils import timezone

    from companies.models import Company, Product, ProductLink
    from companies.services import api_key_create
    from entitlements.models import Feature, FeatureAccess
    from metering.periods import period_for
    from metering.services import meters_get_or_create

    product, _ = Product.objects.get_or_create(code=PRODUCT_CODE, defaults={"name": "Bench track"})
    feature, _ = Feature.objects.get_or_create(
        product=product,
        code="tokens",
        defaults={"name": "Tokens", "kind": "metered", "unit": "token", "reset_period": "monthly"},
    )
    # The same feature with three dimensions (the `dims` run).
    dimensioned, _ = Feature.objects.update_or_create(
        product=product,
        code="tokens_dims",
        defaults={"name": "Tokens by model", "kind": "metered", "unit": "token", "reset_period": "monthly",
                  "dimensions": list(DIMENSIONS)},
    )
    now = timezone.now()
    period = period_for(feature.reset_period, now)
    companies = []
    for n in range(COMPANIES):
        company, _ = Company.objects.get_or_create(short_id=f"bench-track-{n}", defaults={"name": f"Bench Track {n}"})
        ProductLink.objects.get_or_create(
            product=product, external_org_id=f"bench-track-org-{n}", defaults={"company": company}
        )
        for metered in (feature, dimensioned):
            FeatureAccess.objects.update_or_create(
                company=company, feature=metered, defaults={"is_enabled": True, "quantity_limit": None}
            )
        companies.append(company)
    meters = meters_get_or_create(keys={(c.id, feature.id, period) for c in companies}, now=now)
    meters_get_or_create(keys={(c.id, dimensioned.id, period) for c in companies}, now=now)
    _, raw_key = api_key_create(product=product, name="bench/track.py")
    return {
        "product_id": str(product.id),
        "feature_id": str(feature.id),
        "companies": [str(c.id) for c in companies],
        "meters": [str(meters[(c.id, feature.id, period.start)]) for c in companies],
        "key": raw_key,
    }


# --- wrk scripts: unique idempotency keys per request ----------------------------------------

_LUA_HEAD = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
COMPANIES = %(companies)s
METERS = %(meters)s
PRODUCT = "%(product)s"
FEATURE = "%(feature)s"
local counter = 0
local prefix = nil
-- Keys must be unique across wrk runs (warm-up, measurement) and threads:
-- a random prefix per thread from /dev/urandom, then a counter.
function init(args)
  local f = io.open("/dev/urandom", "rb")
  local bytes = f:read(8)
  f:close()
  prefix = string.gsub(bytes, ".", function(c) return string.format("%%02x", string.byte(c)) end)
end
local function next_key()
  counter = counter + 1
  return prefix .. "-" .. counter
end
local reported = false
response = function(status, headers, body)
  if not reported and (status ~= 200 or string.find(body, '"status":"error"', 1, true)) then
    reported = true
    io.stderr:write("unexpected answer " .. status .. ": " .. string.sub(body, 1, 300) .. "\n")
  end
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH_RESULT requests=%%d p50_us=%%d p99_us=%%d errors=%%d status=%%d\n",
    summary.requests, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def _lua_list(values: list[str]) -> str:
    return "{" + ",".join(f'"{value}"' for value in values) + "}"


def _script(seed_data: dict, *, request_body: str, hot: bool = False) -> str:
    head = _LUA_HEAD % {
        "key": seed_data["key"],
        "companies": _lua_list(seed_data["companies"][:1] if hot else seed_data["companies"]),
        "meters": _lua_list(seed_data["meters"][:1] if hot else seed_data["meters"]),
        "product": seed_data["product_id"],
        "feature": seed_data["feature_id"],
    }
    return head + request_body


TRACK = r"""
request = function()
  local i = (counter % #COMPANIES) + 1
  return wrk.format(nil, "/api/v1/usage/track", nil,
    '{"companyId":"' .. COMPANIES[i] .. '","featureCode":"tokens","quantity":1,"idempotencyKey":"' .. next_key() .. '"}')
end
"""

# The same metadata for both features of the `dims` run: 5 × 3 × 4 values.
TRACK_METADATA = r"""
local MODELS = {"gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "llama-3"}
local PLATFORMS = {"web", "ios", "android"}
local REGIONS = {"eu-west", "us-east", "us-west", "ap-south"}
request = function()
  local i = (counter %% #COMPANIES) + 1
  local metadata = '{"model":"' .. MODELS[(counter %% 5) + 1] .. '","platform":"' .. PLATFORMS[(counter %% 3) + 1] ..
    '","region":"' .. REGIONS[(counter %% 4) + 1] .. '"}'
  return wrk.format(nil, "/api/v1/usage/track", nil,
    '{"companyId":"' .. COMPANIES[i] .. '","featureCode":"%(feature)s","quantity":1,"metadata":' .. metadata ..
    ',"idempotencyKey":"' .. next_key() .. '"}')
end
"""

FLOOR = r"""
request = function()
  local i = (counter % #METERS) + 1
  return wrk.format(nil, "/bench/floor/track", nil,
    '{"meterId":"' .. METERS[i] .. '","companyId":"' .. COMPANIES[i] .. '","productId":"' .. PRODUCT ..
    '","featureId":"' .. FEATURE .. '","quantity":1,"idempotencyKey":"' .. next_key() .. '"}')
end
"""

FLOOR_AUTH = FLOOR.replace("/bench/floor/track", "/bench/floor/track-auth")

BATCH_FLOOR = r"""
request = function()
  local events = {}
  for n = 1, %(size)d do
    local i = ((counter + n) %% #METERS) + 1
    events[n] = '{"meterId":"' .. METERS[i] .. '","companyId":"' .. COMPANIES[i] .. '","productId":"' .. PRODUCT ..
      '","featureId":"' .. FEATURE .. '","quantity":1,"idempotencyKey":"' .. next_key() .. '"}'
  end
  return wrk.format(nil, "/bench/floor/track-batch", nil, '{"events":[' .. table.concat(events, ",") .. ']}')
end
"""

BATCH = r"""
request = function()
  local events = {}
  for n = 1, %(size)d do
    local i = ((counter + n) %% #COMPANIES) + 1
    events[n] = '{"companyId":"' .. COMPANIES[i] .. '","featureCode":"tokens","quantity":1,"idempotencyKey":"' .. next_key() .. '"}'
  end
  return wrk.format(nil, "/api/v1/usage/track-batch", nil, '{"events":[' .. table.concat(events, ",") .. ']}')
end
"""


def _dims_in_process(data: dict, *, rounds: int, calls: int = 400) -> None:
    """The service alone, no HTTP: `usage_track` calls/s for the feature with
    three dimensions vs without, interleaved — where the dimension rows' cost
    is not hidden by request handling (on a saturated host the HTTP run is
    bound by the app server's CPU)."""
    import time
    from uuid import UUID, uuid4

    from metering.services import usage_track

    product_id = UUID(data["product_id"])
    companies = [UUID(c) for c in data["companies"]]
    models, platforms, regions = ("gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "llama-3"), \
        ("web", "ios", "android"), ("eu-west", "us-east", "us-west", "ap-south")

    def timed(code: str) -> float:
        started = time.perf_counter()
        for n in range(calls):
            usage_track(product_id=product_id, company_id=companies[n % len(companies)], feature_code=code,
                        quantity=1, idempotency_key=f"inproc-{uuid4().hex}",
                        metadata={"model": models[n % 5], "platform": platforms[n % 3], "region": regions[n % 4]})
        return calls / (time.perf_counter() - started)

    timed("tokens"), timed("tokens_dims")  # warm-up
    plain, dimensioned = [], []
    for _ in range(rounds):
        plain.append(timed("tokens"))
        dimensioned.append(timed("tokens_dims"))
    without, with_dims = sum(plain) / rounds, sum(dimensioned) / rounds
    print(f"\ndimensions, in process (usage_track, one connection, {calls} calls × {rounds} interleaved rounds):")
    print(f"  no dimensions {', '.join(f'{v:.0f}' for v in plain)} calls/s; "
          f"3 dimensions {', '.join(f'{v:.0f}' for v in dimensioned)} calls/s")
    print(f"ratio usage_track with 3 dimensions / without, in process: {with_dims / without:.3f} "
          f"(goal ≥ 0.90): {'met' if with_dims / without >= 0.90 else 'MISSED'}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=None, help="seconds per measurement (default BENCH_DURATION, 10)")
    parser.add_argument("--connections", type=int, default=None, help="default BENCH_CONNECTIONS, 16")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--only", default="single,batch,hot,dims")
    parser.add_argument("--dims-rounds", type=int, default=3, help="interleaved rounds of the dims run (default 3)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of the single and batch runs; the median is reported (default 3)")
    args = parser.parse_args(argv)
    config = BenchConfig()
    if args.duration:
        config = replace(config, duration=args.duration)
    if args.connections:
        config = replace(config, connections=args.connections)
    runs = set(args.only.split(","))

    ensure_database(config.database_url)
    django_setup(config, settings_module=SETTINGS)
    data = seed()
    env = config.server_env(settings_module=SETTINGS)
    log(f"cache: {'redis ' + env['REDIS_URL'] if 'REDIS_URL' in env else 'local memory per worker'}")

    if "dims" in runs:
        _dims_in_process(data, rounds=args.dims_rounds)
    with gunicorn(config, env=env, startup_timeout=120) as base_url:  # a loaded shared host starts slowly
        if "single" in runs:
            singles = [
                ("floor: UPDATE…RETURNING + INSERT", FLOOR),
                ("floor + API key auth and rate limit", FLOOR_AUTH),
                ("POST /usage/track", TRACK),
            ]
            measured = interleaved(
                [(name, functools.partial(run_wrk, name, base_url, _script(data, request_body=body), config))
                 for name, body in singles],
                args.rounds,
            )
            floor, floor_auth, track = (measured[name] for name, _ in singles)
            ratio = track.requests_per_sec / floor.requests_per_sec if floor.requests_per_sec else 0
            print(f"\nsingle-event track, {config.connections} connections over {COMPANIES} companies, "
                  f"median of {args.rounds} interleaved rounds, {config.describe_server()}")
            print_table(
                [floor_auth, track],
                floor=floor,
                goals={"POST /usage/track": f"{ratio:.2f}× floor (goal ≥ 0.75×): {'met' if ratio >= 0.75 else 'MISSED'}"},
            )
            print(f"ratio POST /usage/track: {ratio:.2f}× the floor")
        if "batch" in runs:
            batch_config = replace(config, connections=args.batch_connections)
            batches = [
                ("floor: parse + UPDATE per company + INSERT", BATCH_FLOOR),
                ("POST /usage/track-batch", BATCH),
            ]
            measured = interleaved(
                [(name, functools.partial(run_wrk, name, base_url,
                                          _script(data, request_body=body % {"size": args.batch_size}), batch_config))
                 for name, body in batches],
                args.rounds,
            )
            batch_floor, batch = (measured[name] for name, _ in batches)
            events_per_sec = batch.requests_per_sec * args.batch_size
            floor_events_per_sec = batch_floor.requests_per_sec * args.batch_size
            ratio = events_per_sec / floor_events_per_sec if floor_events_per_sec else 0
            print(
                f"\ntrack-batch, {args.batch_size}-event batches, {args.batch_connections} connections, "
                f"median of {args.rounds} interleaved rounds, {config.describe_server()}"
            )
            for result, per_sec in ((batch_floor, floor_events_per_sec), (batch, events_per_sec)):
                print(
                    f"{result.name:<44} {per_sec:>9.0f} events/s  ({result.requests_per_sec:.1f} batches/s)  "
                    f"p50 {result.p50_ms:.1f} ms  p99 {result.p99_ms:.1f} ms  errors {result.errors + result.non_2xx}"
                )
            met = ratio >= 0.5 and events_per_sec >= 15_000
            print(
                f"ratio POST /usage/track-batch: {ratio:.2f}× the floor, {events_per_sec:,.0f} events/s "
                f"(goal ≥ 0.5× and ≥ 15,000 events/s): {'met' if met else 'MISSED'}"
            )
        if "hot" in runs:
            hot_config = replace(config, connections=16)
            floor = run_wrk("floor on one meter row", base_url, _script(data, request_body=FLOOR, hot=True), hot_config)
            hot = run_wrk("POST /usage/track, one company×feature", base_url,
                          _script(data, request_body=TRACK, hot=True), hot_config)
            print("\nhot key: 16 connections on one company × feature")
            print_table([hot], floor=floor)
        if "dims" in runs:
            plain, dimensioned = [], []
            for round_ in range(1, args.dims_rounds + 1):
                plain.append(run_wrk(f"POST /usage/track, no dimensions ({round_})", base_url,
                                     _script(data, request_body=TRACK_METADATA % {"feature": "tokens"}), config))
                dimensioned.append(run_wrk(f"POST /usage/track, 3 dimensions ({round_})", base_url,
                                           _script(data, request_body=TRACK_METADATA % {"feature": "tokens_dims"}),
                                           config))
            without = sum(r.requests_per_sec for r in plain) / len(plain)
            with_dims = sum(r.requests_per_sec for r in dimensioned) / len(dimensioned)
            ratio = with_dims / without if without else 0
            print(f"\ndimensions: {config.connections} connections over {COMPANIES} companies, interleaved runs")
            for result in [*plain, *dimensioned]:
                print(
                    f"{result.name:<44} {result.requests_per_sec:>9.0f} req/s  p50 {result.p50_ms:.1f} ms  "
                    f"p99 {result.p99_ms:.1f} ms  errors {result.errors + result.non_2xx}"
                )
            print(
                f"ratio POST /usage/track with 3 dimensions / without: {ratio:.3f} "
                f"({with_dims:.0f} vs {without:.0f} req/s; goal ≥ 0.90): {'met' if ratio >= 0.90 else 'MISSED'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

