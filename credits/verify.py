"""`credits_verify`: recompute every wallet from its ledger and its lots.

Checked per wallet: each entry's allocations sum to its amount; each lot's
`remaining` is the sum of the allocations that touched it and lies within
0 … amount; the wallet's bucket balances are its lots' sums; its debt is
what the debt allocations add up to; the ledger sums to lots − debt, and the
last entry's `balance_after` says the same; `reserved` is the sum of the
active holds."""

from __future__ import annotations

from collections import defaultdict

from .models import CreditLot, LedgerEntry, Reservation, ReservationStatus, Wallet


def wallet_verify(wallet: Wallet) -> list[str]:
    problems: list[str] = []
    lot_sums: dict[str, int] = defaultdict(int)
    debt = 0
    ledger_sum = 0
    last = None
    for entry in LedgerEntry.objects.filter(wallet=wallet).order_by("created_at", "id").iterator():
        moved = sum(item.get("amount", 0) for item in entry.allocations)
        if moved != entry.amount:
            problems.append(f"entry {entry.pk}: allocations sum to {moved}, amount is {entry.amount}")
        for item in entry.allocations:
            if "lot" in item:
                lot_sums[item["lot"]] += item.get("amount", 0)
            elif "debt" in item:
                debt -= item["amount"]
        ledger_sum += entry.amount
        last = entry
    buckets: dict[str, int] = defaultdict(int)
    for lot in CreditLot.objects.filter(wallet=wallet):
        buckets[lot.bucket] += lot.remaining
        if lot_sums.get(str(lot.pk), 0) != lot.remaining:
            problems.append(f"lot {lot.pk}: remaining {lot.remaining}, ledger says {lot_sums.get(str(lot.pk), 0)}")
        if not 0 <= lot.remaining <= lot.amount:
            problems.append(f"lot {lot.pk}: remaining {lot.remaining} outside 0…{lot.amount}")
    for bucket, value in wallet.bucket_balances().items():
        if buckets.get(str(bucket), 0) != value:
            problems.append(f"{bucket} balance {value}, lots hold {buckets.get(str(bucket), 0)}")
    if debt != wallet.debt:
        problems.append(f"debt {wallet.debt}, ledger says {debt}")
    if ledger_sum != wallet.total:
        problems.append(f"ledger sums to {ledger_sum}, balance is {wallet.total}")
    if last is not None and last.balance_after != wallet.total:
        problems.append(f"last entry says balance {last.balance_after}, balance is {wallet.total}")
    holds = sum(r.hold_remaining for r in Reservation.objects.filter(wallet=wallet, status=ReservationStatus.ACTIVE))
    if holds != wallet.reserved:
        problems.append(f"reserved {wallet.reserved}, active holds sum to {holds}")
    return problems


def credits_verify() -> dict:
    """{wallet id: [problem, …]} for every wallet with drift (empty: the books balance)."""
    drift = {}
    for wallet in Wallet.objects.order_by("pk").iterator():
        problems = wallet_verify(wallet)
        if problems:
            drift[wallet.pk] = problems
    return drift
