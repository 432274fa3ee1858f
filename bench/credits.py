#!/usr/bin/env python
"""Credit debits under load: gunicorn (production settings, DEBUG off) on
PostgreSQL, driven by wrk, each figure next to a floor measured in the same
run by the same server.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/saasdesk_bench python bench/credits.py
    options: --duration 10 --connections 16 --only spread,hot,scarce

Runs:
  spread  POST /api/v1/credits/debit of 1 credit, 16 connections over 64
          wallets — vs the floor, a bare DRF view doing one conditional
          UPDATE … RETURNING on a balance row + one INSERT (credits.bench_views;
          no auth, validation, idempotency or lots), and the same floor behind
          the API's key auth and rate limit. Goal (issue 11): ≥ 0.6×.
  hot     the same on one wallet (every debit waits for the same row lock),
          vs the floor on one balance row.
  scarce  a short run on a wallet holding exactly K = 100 credits: debits
          of 1 until it is empty; once any is refused (402), exactly K
          must have been admitted and the balance must be 0.
Every debit has a unique jobId, so nothing is a replay. At the end the
books are checked: every bench wallet's ledger, lots and balances agree
(credits_verify), no balance or `available` is negative, and the scarce
wallet admitted at most K (exactly K once it refused any). Nothing here asserts a timing; a broken book exits 1."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    REPORT_LUA,
    UNIQUE_KEYS_LUA,
    BenchConfig,
    django_setup,
    ensure_database,
    gunicorn,
    log,
    print_table,
    run_wrk,
)

PRODUCT_CODE = "bench-credits"
SETTINGS = "bench.credits_settings"
WALLETS = 64
PLENTY = 10**12
SCARCE = 100
FLOOR_HOT_ID = 1_000_000


def seed() -> dict:
    """Product `bench-credits`, 64 linked companies with a wallet each (a
    top-up lot of 10^12 credits), one scarce wallet of exactly SCARCE
    credits (made anew each run), the floor's balance rows, and an API key."""
    from django.db import connection

    from companies.models import Company, Product, ProductLink
    from companies.services import api_key_create
    from credits.bench_views import FLOOR_TABLES_SQL
    from credits.services import credits_grant

    product, _ = Product.objects.get_or_create(code=PRODUCT_CODE, defaults={"name": "Bench credits"})
    companies = []
    for n in range(WALLETS):
        company, _ = Company.objects.get_or_create(short_id=f"bench-credits-{n}", defaults={"name": f"Bench Credits {n}"})
        ProductLink.objects.get_or_create(
            product=product, external_org_id=f"bench-credits-org-{n}", defaults={"company": company}
        )
        credits_grant(company_id=company.pk, product_id=product.pk, amount=PLENTY, bucket="topup",
                      reason="bench supply", actor="system:bench")
        companies.append(company)
    run = Company.objects.filter(short_id__startswith="bench-credits-scarce-").count()
    scarce = Company.objects.create(short_id=f"bench-credits-scarce-{run}", name=f"Bench Credits scarce {run}")
    ProductLink.objects.create(product=product, external_org_id=f"bench-credits-scarce-{run}", company=scarce)
    credits_grant(company_id=scarce.pk, product_id=product.pk, amount=SCARCE, bucket="promotional",
                  reason="bench scarce supply", actor="system:bench")
    with connection.cursor() as cursor:
        cursor.execute(FLOOR_TABLES_SQL)
        for balance_id in [*range(WALLETS), FLOOR_HOT_ID]:
            cursor.execute(
                "INSERT INTO bench_credit_balance (id, balance) VALUES (%s, %s) "
                "ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance",
                [balance_id, PLENTY],
            )
    _, raw_key = api_key_create(product=product, name="bench/credits.py")
    return {"product_id": product.pk, "companies": [str(c.pk) for c in companies], "scarce": str(scarce.pk),
            "key": raw_key}


def _lua_list(values) -> str:
    return "{" + ",".join(f'"{value}"' for value in values) + "}"


def _script(*, key: str, targets: list, body: str) -> str:
    head = (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\nTARGETS = {_lua_list(targets)}\n'
    )
    return head + UNIQUE_KEYS_LUA + REPORT_LUA + body


DEBIT = r"""
request = function()
  local i = (counter % #TARGETS) + 1
  return wrk.format(nil, "/api/v1/credits/debit", nil,
    '{"companyId":"' .. TARGETS[i] .. '","amount":1,"jobId":"' .. next_key() .. '","sourceService":"bench"}')
end
"""

FLOOR = r"""
request = function()
  local i = (counter % #TARGETS) + 1
  return wrk.format(nil, "/bench/floor/debit", nil,
    '{"balanceId":' .. TARGETS[i] .. ',"amount":1,"jobId":"' .. next_key() .. '"}')
end
"""


def check_books(data: dict, scarce_refused: int) -> list[str]:
    """What is wrong with the bench wallets' books (empty: nothing)."""
    from credits.models import LedgerEntry, Wallet
    from credits.verify import wallet_verify

    problems = []
    wallets = Wallet.objects.filter(product_id=data["product_id"])
    for wallet in wallets:
        problems += [f"wallet {wallet.pk}: {p}" for p in wallet_verify(wallet)]
        if wallet.total < 0 or wallet.available < 0:
            problems.append(f"wallet {wallet.pk}: overdrawn ({wallet.total}, available {wallet.available})")
    scarce = wallets.get(company_id=data["scarce"])
    debits = LedgerEntry.objects.filter(wallet=scarce, kind="usage").count()
    if debits > SCARCE or scarce.total != SCARCE - debits:
        problems.append(f"scarce wallet: {debits} debits of 1 on {SCARCE} credits, balance {scarce.total}")
    if scarce_refused and debits != SCARCE:
        problems.append(f"scarce wallet: debits refused (402) while {SCARCE - debits} credits were left")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=None, help="seconds per measurement (default BENCH_DURATION, 10)")
    parser.add_argument("--connections", type=int, default=None, help="default BENCH_CONNECTIONS, 16")
    parser.add_argument("--only", default="spread,hot,scarce")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each measurement")
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
    scarce_refused = 0
    with gunicorn(config, env=env) as base_url:
        if "spread" in runs:
            floor = run_wrk("floor: UPDATE…RETURNING + INSERT", base_url,
                            _script(key=data["key"], targets=list(range(WALLETS)), body=FLOOR), config,
                            warmup=args.warmup)
            floor_auth = run_wrk("floor + API key auth and rate limit", base_url,
                                 _script(key=data["key"], targets=list(range(WALLETS)),
                                         body=FLOOR.replace("/bench/floor/debit", "/bench/floor/debit-auth")),
                                 config, warmup=args.warmup)
            debit = run_wrk("POST /credits/debit", base_url,
                            _script(key=data["key"], targets=data["companies"], body=DEBIT), config,
                            warmup=args.warmup)
            print(f"\ndebit of 1 credit, {config.connections} connections over {WALLETS} wallets")
            print_table([floor_auth, debit], floor=floor, goals={"POST /credits/debit": "≥ 0.6× the floor"})
            print(f"ratio: {debit.requests_per_sec / floor.requests_per_sec:.2f}× the floor")
        if "hot" in runs:
            hot_config = replace(config, connections=16)
            floor = run_wrk("floor on one balance row", base_url,
                            _script(key=data["key"], targets=[FLOOR_HOT_ID], body=FLOOR), hot_config,
                            warmup=args.warmup)
            hot = run_wrk("POST /credits/debit, one wallet", base_url,
                          _script(key=data["key"], targets=data["companies"][:1], body=DEBIT), hot_config,
                          warmup=args.warmup)
            print("\nhot wallet: 16 connections on one wallet")
            print_table([hot], floor=floor, goals={"POST /credits/debit, one wallet": "≥ 0.6× the floor"})
            print(f"ratio: {hot.requests_per_sec / floor.requests_per_sec:.2f}× the floor")
        if "scarce" in runs:
            scarce = run_wrk("POST /credits/debit, scarce wallet", base_url,
                             _script(key=data["key"], targets=[data["scarce"]], body=DEBIT),
                             replace(config, connections=16), duration=min(2, config.duration), warmup=0)
            scarce_refused = scarce.non_2xx
            print(f"\nscarce wallet of {SCARCE} credits: {scarce.requests} debits answered, {scarce.non_2xx} refused")
    # Checked once the server has stopped, so debits still in flight when wrk
    # ended are in the books too.
    problems = check_books(data, scarce_refused)
    for problem in problems:
        log(f"BOOKS: {problem}")
    print(f"\nbooks: {'OK — ledger = lots = balance, nothing overdrawn' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
