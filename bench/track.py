#!/usr/bin/env python
"""Usage tracking throughput under gunicorn + PostgreSQL, driven by wrk.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/saasdesk_bench python bench/track.py
    options: --duration 10 --connections 16 --workers 4 --batch-size 500 --only single,batch,hot

Runs, each printed next to a floor measured in the same run:
  single  POST /api/v1/usage/track, one event per request, spread over 64
          companies (no row contention): req/s, p50, p99 — vs the floor view
          (metering.bench_views: one conditional UPDATE … RETURNING + one
          INSERT, no auth/validation/idempotency). Goal: ≥ 60% of the floor.
  batch   POST /api/v1/usage/track-batch with 500-event batches: events/s.
          Goal: ≥ 10,000 events/s on 2 cores.
  hot     16 connections tracking one company × feature (every request
          waits for the same row lock) vs the floor on one meter.
Every request carries a unique idempotency key (a counter in the wrk Lua
script), so nothing is deduplicated. Nothing here asserts a timing.

Needs `wrk` (apt-get install wrk) and PostgreSQL; set BENCH_REDIS_URL to use
Redis for the cache (API key lookups, throttling, check invalidation) as in
production, otherwise each gunicorn worker has a local-memory cache."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/saasdesk_bench"
PRODUCT_CODE = "bench-track"
COMPANIES = 64


# --- setup ---------------------------------------------------------------------------------


def _environment(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "bench.track_settings",
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    redis_url = os.environ.get("BENCH_REDIS_URL", "")
    if redis_url:
        env["REDIS_URL"] = redis_url
        env["CACHE_KEY_PREFIX"] = "bench-track"
    else:
        env.pop("REDIS_URL", None)
    return env


def _ensure_database(database_url: str) -> None:
    import psycopg

    base, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _django(env: dict[str, str]) -> None:
    os.environ.update(env)
    for name in ("REDIS_URL", "CACHE_KEY_PREFIX"):
        if name not in env:
            os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _seed() -> dict:
    """Product, an unlimited monthly metered feature, 64 linked companies with
    access and a meter for the current period, and an API key. Idempotent."""
    from django.core.management import call_command
    from django.utils import timezone

    from companies.models import Company, Product, ProductLink
    from companies.services import api_key_create
    from entitlements.models import Feature, FeatureAccess
    from metering.periods import period_for
    from metering.services import meters_get_or_create

    call_command("migrate", verbosity=0)
    product, _ = Product.objects.get_or_create(code=PRODUCT_CODE, defaults={"name": "Bench track"})
    feature, _ = Feature.objects.get_or_create(
        product=product,
        code="tokens",
        defaults={"name": "Tokens", "kind": "metered", "unit": "token", "reset_period": "monthly"},
    )
    now = timezone.now()
    period = period_for(feature.reset_period, now)
    companies = []
    for n in range(COMPANIES):
        company, _ = Company.objects.get_or_create(short_id=f"bench-track-{n}", defaults={"name": f"Bench Track {n}"})
        ProductLink.objects.get_or_create(
            product=product, external_org_id=f"bench-track-org-{n}", defaults={"company": company}
        )
        FeatureAccess.objects.update_or_create(
            company=company, feature=feature, defaults={"is_enabled": True, "quantity_limit": None}
        )
        companies.append(company)
    meters = meters_get_or_create(keys={(c.id, feature.id, period) for c in companies}, now=now)
    _, raw_key = api_key_create(product=product, name="bench/track.py")
    return {
        "product_id": str(product.id),
        "feature_id": str(feature.id),
        "companies": [str(c.id) for c in companies],
        "meters": [str(meters[(c.id, feature.id, period.start)]) for c in companies],
        "key": raw_key,
    }


# --- gunicorn -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_gunicorn(env: dict[str, str], workers: int, port: int) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [str(gunicorn), "config.wsgi", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning", "--keep-alive", "30"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return process
        except Exception:  # noqa: BLE001 - not up yet
            if process.poll() is not None:
                raise SystemExit("gunicorn exited during startup") from None
            time.sleep(0.2)
    _stop(process)
    raise SystemExit("gunicorn did not start within 30 s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


# --- wrk scripts ------------------------------------------------------------------------------

_LUA_COMMON = r"""
local counter = 0
thread_id = 0
local threads = {}
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end
local function next_key()
  counter = counter + 1
  return RUN .. "-" .. thread_id .. "-" .. counter
end
"""


def _lua_single(*, seed: dict, run: str, floor: bool, hot: bool) -> str:
    companies = seed["companies"][:1] if hot else seed["companies"]
    meters = seed["meters"][:1] if hot else seed["meters"]
    lua_list = lambda values: "{" + ",".join(f'"{v}"' for v in values) + "}"  # noqa: E731
    if floor:
        body = (
            '\'{"meterId":"\' .. METERS[i] .. \'","companyId":"\' .. COMPANIES[i] .. \'","productId":"\' .. PRODUCT '
            '.. \'","featureId":"\' .. FEATURE .. \'","quantity":1,"idempotencyKey":"\' .. next_key() .. \'"}\''
        )
        path = "/bench/floor/track"
    else:
        body = (
            '\'{"companyId":"\' .. COMPANIES[i] .. \'","featureCode":"tokens","quantity":1,'
            '"idempotencyKey":"\' .. next_key() .. \'"}\''
        )
        path = "/api/v1/usage/track"
    return f"""
RUN = "{run}"
PRODUCT = "{seed['product_id']}"
FEATURE = "{seed['feature_id']}"
COMPANIES = {lua_list(companies)}
METERS = {lua_list(meters)}
{_LUA_COMMON}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {seed['key']}"
request = function()
  local i = (counter % #COMPANIES) + 1
  return wrk.format(nil, "{path}", nil, {body})
end
response = function(status, headers, body)
  if status ~= 200 and not reported then
    reported = true
    io.stderr:write("unexpected status " .. status .. ": " .. string.sub(body, 1, 300) .. "\\n")
  end
end
"""


def _lua_batch(*, seed: dict, run: str, batch_size: int) -> str:
    companies = seed["companies"]
    lua_list = "{" + ",".join(f'"{c}"' for c in companies) + "}"
    return f"""
RUN = "{run}"
COMPANIES = {lua_list}
{_LUA_COMMON}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {seed['key']}"
request = function()
  local events = {{}}
  for n = 1, {batch_size} do
    local i = ((counter + n) % #COMPANIES) + 1
    events[n] = '{{"companyId":"' .. COMPANIES[i] .. '","featureCode":"tokens","quantity":1,"idempotencyKey":"' .. next_key() .. '"}}'
  end
  return wrk.format(nil, "/api/v1/usage/track-batch", nil, '{{"events":[' .. table.concat(events, ",") .. ']}}')
end
response = function(status, headers, body)
  if (status ~= 200 or string.find(body, '"status":"error"', 1, true)) and not reported then
    reported = true
    io.stderr:write("unexpected answer " .. status .. ": " .. string.sub(body, 1, 300) .. "\\n")
  end
end
"""


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * _UNITS[unit]


def _wrk(*, port: int, script: str, duration: int, connections: int, threads: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        path = handle.name
    try:
        output = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", path,
             f"http://127.0.0.1:{port}"],
            capture_output=True, text=True, check=True,
        )
    finally:
        os.unlink(path)
    text = output.stdout
    if output.stderr.strip():
        print("   wrk:", output.stderr.strip().splitlines()[0], file=sys.stderr)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50": _ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1)),
        "p99": _ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1)),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def _line(label: str, figures: dict, *, unit_per_request: int = 1) -> str:
    rate = figures["rps"] * unit_per_request
    what = "events/s" if unit_per_request > 1 else "req/s"
    extra = f"  non-2xx={figures['non_2xx']}" if figures["non_2xx"] else ""
    if figures["socket_errors"]:
        extra += f"  socket errors: {figures['socket_errors']}"
    return f"  {label:<34} {rate:>10,.0f} {what:<9} p50 {figures['p50']:>7.2f} ms  p99 {figures['p99']:>7.2f} ms{extra}"


# --- main ----------------------------------------------------------------------------------------


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (keep ≤ 20)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--only", default="single,batch,hot")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("bench/track.py needs wrk: apt-get install wrk")
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    _ensure_database(database_url)
    env = _environment(database_url)
    _django(env)
    seed = _seed()
    runs = set(args.only.split(","))
    run_id = f"r{int(time.time())}"
    port = _free_port()
    server = _start_gunicorn(env, args.workers, port)
    wrk = dict(port=port, duration=args.duration, threads=args.threads)
    print(
        f"bench/track.py: gunicorn {args.workers} sync workers, PostgreSQL {database_url.rpartition('@')[2]}, "
        f"cache {'redis' if 'REDIS_URL' in env else 'local memory'}, {os.cpu_count()} CPUs, {args.duration} s per run",
        flush=True,
    )
    try:
        if "single" in runs:
            floor = _wrk(script=_lua_single(seed=seed, run=run_id + "f", floor=True, hot=False),
                         connections=args.connections, **wrk)
            track = _wrk(script=_lua_single(seed=seed, run=run_id + "s", floor=False, hot=False),
                         connections=args.connections, **wrk)
            print(f"single-event track, {args.connections} connections, {COMPANIES} companies:")
            print(_line("floor (UPDATE…RETURNING + INSERT)", floor))
            print(_line("POST /api/v1/usage/track", track))
            print(f"  → {100 * track['rps'] / floor['rps']:.0f}% of the floor (goal ≥ 60%)", flush=True)
        if "batch" in runs:
            batch = _wrk(script=_lua_batch(seed=seed, run=run_id + "b", batch_size=args.batch_size),
                         connections=args.batch_connections, **wrk)
            print(f"track-batch, {args.batch_size}-event batches, {args.batch_connections} connections:")
            print(_line("POST /api/v1/usage/track-batch", batch, unit_per_request=args.batch_size))
            print(f"  → goal ≥ 10,000 events/s: {'met' if batch['rps'] * args.batch_size >= 10_000 else 'NOT met'}",
                  flush=True)
        if "hot" in runs:
            floor = _wrk(script=_lua_single(seed=seed, run=run_id + "hf", floor=True, hot=True), connections=16, **wrk)
            hot = _wrk(script=_lua_single(seed=seed, run=run_id + "h", floor=False, hot=True), connections=16, **wrk)
            print("hot key, 16 connections on one company × feature:")
            print(_line("floor on one meter", floor))
            print(_line("POST /api/v1/usage/track", hot))
            print(f"  → {100 * hot['rps'] / floor['rps']:.0f}% of the floor", flush=True)
    finally:
        _stop(server)


if __name__ == "__main__":
    main()
