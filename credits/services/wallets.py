"""Credits in: grants (and the lot-adding core that purchases and
subscription cycles will use), and staff operations on a wallet: freeze,
unfreeze, the low-balance threshold, transfers between wallets (merges)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import BadRequest, Conflict

from ..models import AutoRefill, Bucket, CreditLot, EntryKind, LedgerEntry, LotOrigin, ReservationStatus, Wallet, WalletEvent
from ..rules import check_positive
from .ledger import credit_lot_deltas, entry_apply, spendable_lots, wallet_lock


def wallet_get_or_create(*, company_id: UUID, product_id: UUID) -> Wallet:
    """The company's wallet in the product, made on first use (a grant, a
    purchase, staff settings). Concurrent callers get the same row."""
    wallet = Wallet.objects.filter(company_id=company_id, product_id=product_id).first()
    if wallet is not None:
        return wallet
    try:
        with transaction.atomic():
            return Wallet.objects.create(company_id=company_id, product_id=product_id)
    except IntegrityError:
        return Wallet.objects.get(company_id=company_id, product_id=product_id)


@dataclass(frozen=True)
class GrantResult:
    created: bool
    entry: LedgerEntry
    lot: CreditLot


def lot_add(
    wallet: Wallet,
    *,
    kind: str,
    bucket: str,
    amount: int,
    origin: str,
    now: datetime,
    expires_at: datetime | None = None,
    lot_fields: dict | None = None,
    **entry_fields,
) -> tuple[LedgerEntry, CreditLot]:
    """A new lot of `amount` credits and its ledger entry; the credits pay
    the wallet's debt first (on the same entry). Wallet locked."""
    lot = CreditLot.objects.create(
        wallet=wallet, bucket=bucket, amount=amount, remaining=0, expires_at=expires_at, origin=origin,
        created_at=entry_fields.get("recorded_at") or now, **(lot_fields or {}),
    )
    deltas, debt_delta = credit_lot_deltas(wallet, [(lot, amount)])
    entry = entry_apply(wallet, kind=kind, now=now, lot_deltas=deltas, debt_delta=debt_delta, lot=lot, **entry_fields)
    return entry, lot


def credits_grant(
    *,
    company_id: UUID,
    product_id: UUID,
    amount: int,
    reason: str,
    bucket: str = Bucket.PROMOTIONAL,
    expires_at: datetime | None = None,
    actor: str = "",
    recorded_at: datetime | None = None,
) -> GrantResult:
    """Grant credits once per (wallet, reason): a repeat with the same amount,
    bucket and expiry returns the first grant (`created=False`), with other
    values it is 409. Allowed on a frozen wallet."""
    check_positive(amount, field="amount")
    reason = (reason or "").strip()
    if not reason:
        raise BadRequest.for_field("reason", "A reason is required.")
    if bucket not in Bucket.values:
        raise BadRequest.for_field("bucket", f"Must be one of {', '.join(Bucket.values)}.")
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise BadRequest.for_field("expiresAt", "Must be in the future.")
    wallet = wallet_get_or_create(company_id=company_id, product_id=product_id)
    with transaction.atomic():
        wallet = wallet_lock(wallet_id=wallet.pk)
        # Under the lock a committed grant with this reason is visible, so
        # the unique (wallet, reason) index is only the last line of defence.
        existing = LedgerEntry.objects.select_related("lot").filter(
            wallet=wallet, kind=EntryKind.GRANT, reason=reason
        ).first()
        if existing is not None:
            lot = existing.lot
            if (lot.amount, lot.bucket, lot.expires_at) != (amount, bucket, expires_at):
                raise Conflict(
                    "Credits were already granted for this reason with other values.",
                    details={"ledgerEntryId": str(existing.pk), "lotId": str(lot.pk), "amount": lot.amount,
                             "bucket": lot.bucket},
                )
            return GrantResult(created=False, entry=existing, lot=lot)
        entry, lot = lot_add(
            wallet, kind=EntryKind.GRANT, bucket=bucket, amount=amount, origin=LotOrigin.GRANT, now=now,
            expires_at=expires_at, lot_fields={"grant_reason": reason}, reason=reason, actor=actor,
            description=f"{amount} {Bucket(bucket).label.lower()} credits granted", recorded_at=recorded_at,
        )
    return GrantResult(created=True, entry=entry, lot=lot)


def wallet_freeze(*, wallet: Wallet, reason: str, actor: str) -> Wallet:
    """Freeze: debits, holds and purchases are refused (423) until unfrozen;
    refunds, grants, /usage and /settle still work."""
    reason = (reason or "").strip()
    if not reason:
        raise BadRequest.for_field("reason", "A reason is required.")
    with transaction.atomic():
        wallet = wallet_lock(wallet_id=wallet.pk)
        if not wallet.frozen:
            wallet.frozen, wallet.frozen_reason, wallet.frozen_at, wallet.frozen_by = True, reason, timezone.now(), actor
            wallet.save(update_fields=["frozen", "frozen_reason", "frozen_at", "frozen_by"])
            WalletEvent.objects.create(wallet=wallet, kind=WalletEvent.Kind.FROZEN, reason=reason, actor=actor)
    return wallet


def wallet_unfreeze(*, wallet: Wallet, reason: str, actor: str) -> Wallet:
    reason = (reason or "").strip()
    if not reason:
        raise BadRequest.for_field("reason", "A reason is required.")
    with transaction.atomic():
        wallet = wallet_lock(wallet_id=wallet.pk)
        if wallet.frozen:
            wallet.frozen, wallet.frozen_reason, wallet.frozen_at, wallet.frozen_by = False, "", None, ""
            wallet.save(update_fields=["frozen", "frozen_reason", "frozen_at", "frozen_by"])
            WalletEvent.objects.create(wallet=wallet, kind=WalletEvent.Kind.UNFROZEN, reason=reason, actor=actor)
    return wallet


def wallet_threshold_set(*, wallet: Wallet, low_balance_threshold: int | None, reason: str, actor: str) -> Wallet:
    """Set the level below which `credits.low_balance` fires (None: never)."""
    if low_balance_threshold is not None and low_balance_threshold < 0:
        raise BadRequest.for_field("lowBalanceThreshold", "Must be 0 or more.")
    with transaction.atomic():
        wallet = wallet_lock(wallet_id=wallet.pk)
        wallet.low_balance_threshold = low_balance_threshold
        wallet.save(update_fields=["low_balance_threshold"])
        WalletEvent.objects.create(
            wallet=wallet, kind=WalletEvent.Kind.THRESHOLD, reason=reason or f"Threshold {low_balance_threshold}",
            actor=actor,
        )
    return wallet


@dataclass(frozen=True)
class TransferResult:
    moved: int
    out_entry: LedgerEntry | None
    in_entry: LedgerEntry | None


def wallet_transfer(*, source: Wallet, target: Wallet, reason: str, actor: str) -> TransferResult:
    """Move everything of `source` into `target` (same product), as a pair of
    `transfer` entries: each live lot is copied with its bucket and expiry,
    and the source's debt becomes the target's. For merging companies. 409
    while `source` has active reservations. Running it again moves nothing."""
    if source.product_id != target.product_id or source.pk == target.pk:
        raise BadRequest("A transfer needs two different wallets of one product.")
    now = timezone.now()
    with transaction.atomic():
        # Both wallets locked, in primary-key order, so two transfers between
        # the same wallets in opposite directions cannot deadlock.
        first, second = sorted([source.pk, target.pk])
        locked = {first: wallet_lock(wallet_id=first), second: wallet_lock(wallet_id=second)}
        source, target = locked[source.pk], locked[target.pk]
        if source.reservations.filter(status=ReservationStatus.ACTIVE).exists():
            raise Conflict("The wallet has active reservations; settle or release them first.")
        lots = spendable_lots(source, now=now)
        if not lots and not source.debt:
            return TransferResult(moved=0, out_entry=None, in_entry=None)
        debt = source.debt
        moving = [(lot, lot.remaining) for lot in lots]
        out_entry = entry_apply(
            source, kind=EntryKind.TRANSFER, now=now, lot_deltas=[(lot, -n) for lot, n in moving],
            debt_delta=-debt, reason=reason, actor=actor, description=f"Transferred to {target.company}",
        )
        copies = [
            (
                CreditLot.objects.create(
                    wallet=target, bucket=lot.bucket, amount=n, remaining=0, expires_at=lot.expires_at,
                    origin=LotOrigin.TRANSFER, transferred_from=lot, cycle_tier_code=lot.cycle_tier_code,
                    cycle_period_start=lot.cycle_period_start, created_at=now,
                ),
                n,
            )
            for lot, n in moving
        ]
        # The source's debt moves over; the arriving credits pay the combined debt first.
        target.debt += debt
        deltas, paid = credit_lot_deltas(target, copies)
        target.debt -= debt
        in_entry = entry_apply(
            target, kind=EntryKind.TRANSFER, now=now, lot_deltas=deltas, debt_delta=debt + paid,
            reason=reason, actor=actor, reference=out_entry, description=f"Transferred from {source.company}",
        )
    return TransferResult(moved=-out_entry.amount, out_entry=out_entry, in_entry=in_entry)


@dataclass(frozen=True)
class WalletsMerged:
    wallets: int  # the duplicate's wallets that had something to move
    credits: int  # credits moved, all wallets together


def wallets_merge(*, source_company_id: UUID, target_company_id: UUID, reason: str, actor: str) -> WalletsMerged:
    """Credits' part of a merge (SPEC §3): each wallet of the duplicate is
    emptied into the kept company's wallet of the same product (made if
    missing) by `wallet_transfer` — a `transfer` entry on both ledgers, lots
    keeping their bucket and expiry, debt following — so both statements show
    it and the books balance. 409 while a wallet of the duplicate is frozen
    (a dispute is open) or holds active reservations. The duplicate's
    auto-refill is switched off (the kept wallet keeps its own settings)."""
    moved_wallets = moved_credits = 0
    for source in Wallet.objects.filter(company_id=source_company_id).order_by("pk"):
        if source.frozen:
            raise Conflict(
                "A credit wallet of the duplicate is frozen (a dispute is open); unfreeze it before merging.",
                details={"walletId": str(source.pk), "productId": str(source.product_id)},
            )
        target = wallet_get_or_create(company_id=target_company_id, product_id=source.product_id)
        result = wallet_transfer(source=source, target=target, reason=reason, actor=actor)
        if result.out_entry is not None:
            moved_wallets += 1
            moved_credits += result.moved
        AutoRefill.objects.filter(wallet_id=source.pk, enabled=True).update(
            enabled=False, updated_at=timezone.now(), updated_by=actor
        )
    return WalletsMerged(wallets=moved_wallets, credits=moved_credits)
