"""The ledger core: every movement of a wallet goes through `entry_apply`,
called with the wallet row locked.

Locking rule (the one lock of this app): a transaction that changes a
wallet's lots, balances, debt, holds or ledger first takes
`SELECT … FOR UPDATE` on the wallet row (`wallet_lock`). That lock protects
every invariant that spans rows: no two debits can both spend the last
credits (each re-reads the balances after the other committed), the lots sum
to the wallet's bucket balances, the ledger sums to the balance, and
`reserved` is the sum of the active holds. A transaction locks at most one
wallet, except a transfer, which locks both in primary-key order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone

from ..models import BUCKET_SPEND_RANK, CreditLot, EntryKind, LedgerEntry, Wallet
from ..notifications import balance_fell

_BUCKET_FIELD = {bucket: f"balance_{bucket}" for bucket in BUCKET_SPEND_RANK}
_WALLET_MONEY_FIELDS = ["balance_subscription", "balance_promotional", "balance_topup", "debt", "reserved", "updated_at"]


def wallet_lock(*, wallet_id: UUID) -> Wallet:
    """The wallet row, locked until the end of the caller's transaction."""
    return Wallet.objects.select_for_update().select_related("product").get(pk=wallet_id)


def spendable_lots(wallet: Wallet, *, now: datetime) -> list[CreditLot]:
    """The wallet's lots with credits left, in spending order (SPEC §7): the
    lot that expires first, then subscription before promotional before
    top-up, lots without expiry last. Lots that expired but were not swept yet
    are swept here first (an `expiry` entry each), so a debit never spends
    them. Call with the wallet locked."""
    rank = Case(
        *(When(bucket=bucket, then=Value(r)) for bucket, r in BUCKET_SPEND_RANK.items()),
        output_field=IntegerField(),
    )
    lots = list(
        CreditLot.objects.filter(wallet=wallet, remaining__gt=0).order_by(
            F("expires_at").asc(nulls_last=True), rank, "created_at", "id"
        )
    )
    expired = [lot for lot in lots if lot.is_expired(now)]
    for lot in expired:
        lot_expire(wallet, lot, now=now)
    return [lot for lot in lots if not lot.is_expired(now)] if expired else lots


def lot_expire(wallet: Wallet, lot: CreditLot, *, now: datetime) -> LedgerEntry:
    """An `expiry` entry for what is left in `lot` (wallet locked)."""
    return entry_apply(
        wallet,
        kind=EntryKind.EXPIRY,
        lot_deltas=[(lot, -lot.remaining)],
        now=now,
        lot=lot,
        actor="system:credits.expire_credits",
        description=f"{lot.get_bucket_display()} lot of {lot.amount} expired",
    )


@dataclass
class Take:
    lot_deltas: list[tuple[CreditLot, int]]
    shortfall: int


def take_from_lots(lots: list[CreditLot], amount: int) -> Take:
    """Plan taking `amount` from `lots` in their order; `shortfall` is what they cannot cover."""
    deltas, left = [], amount
    for lot in lots:
        if left == 0:
            break
        part = min(lot.remaining, left)
        if part:
            deltas.append((lot, -part))
            left -= part
    return Take(lot_deltas=deltas, shortfall=left)


def entry_apply(
    wallet: Wallet,
    *,
    kind: str,
    now: datetime,
    lot_deltas: list[tuple[CreditLot, int]] = (),
    debt_delta: int = 0,
    extra_allocations: list[dict] = (),
    recorded_at: datetime | None = None,
    **fields,
) -> LedgerEntry:
    """Move the lots by `lot_deltas` and the debt by `debt_delta` (positive:
    the wallet owes more), write the ledger entry that says so, and keep the
    wallet's balances in step. The entry's amount is the sum of the moves.
    The entry is stamped with the time of writing (`recorded_at` backfills
    history: imports and the demo). The caller holds the wallet lock."""
    before = wallet.total
    allocations: list[dict] = []
    for lot, delta in lot_deltas:
        if not delta:
            continue
        lot.remaining += delta
        CreditLot.objects.filter(pk=lot.pk).update(remaining=F("remaining") + delta)
        setattr(wallet, _BUCKET_FIELD[lot.bucket], getattr(wallet, _BUCKET_FIELD[lot.bucket]) + delta)
        allocations.append({"lot": str(lot.pk), "bucket": lot.bucket, "amount": delta})
    if debt_delta:
        wallet.debt += debt_delta
        allocations.append({"debt": -debt_delta, "amount": -debt_delta})
    wallet.updated_at = now
    wallet.save(update_fields=_WALLET_MONEY_FIELDS)
    entry = LedgerEntry.objects.create(
        wallet=wallet,
        kind=kind,
        amount=sum(item["amount"] for item in allocations),
        balance_after=wallet.total,
        bucket_balances_after={str(k): v for k, v in wallet.bucket_balances().items()},
        allocations=allocations + list(extra_allocations),
        # The time of writing, not `now` (a sweep's cut-off): the ledger's order.
        created_at=recorded_at or timezone.now(),
        **fields,
    )
    if wallet.total < before:
        balance_fell(wallet, before=before, after=wallet.total, entry=entry)
    return entry


def charge(wallet: Wallet, *, amount: int, kind: str, now: datetime, **fields) -> LedgerEntry:
    """Charge `amount` for work done: from the lots in spending order, and
    what they cannot cover as debt. Never refused (frozen, suspended or in
    debt: a charge for work done is never lost). Wallet locked."""
    take = take_from_lots(spendable_lots(wallet, now=now), amount)
    return entry_apply(wallet, kind=kind, now=now, lot_deltas=take.lot_deltas, debt_delta=take.shortfall, **fields)


def credit_lot_deltas(wallet: Wallet, returns: list[tuple[CreditLot, int]]) -> tuple[list[tuple[CreditLot, int]], int]:
    """Credits arriving into lots pay the debt first (SPEC §7): the planned
    `returns` reduced by what goes to the debt, and the (negative) debt delta."""
    owed = wallet.debt
    deltas = []
    for lot, amount in returns:
        to_debt = min(owed, amount)
        owed -= to_debt
        deltas.append((lot, amount - to_debt))
    return deltas, owed - wallet.debt
