"""Reservations (SPEC §7): a run holds credits from `available`, charges
real usage as it goes (/usage), and ends settled, released or expired.

Every step locks the wallet row first and then re-reads the reservation:
the lock serialises the hold arithmetic (`wallet.reserved` is the sum of the
active holds, and a hold plus concurrent debits never overdraw `available`)
and makes a late settle racing the expiry sweep charge once — whichever comes
second sees the status and the `charged` total the first one committed.

Cost accounting: `charged` is everything charged for the run (usage,
settlement, fallback). A charge is only ever what brings `charged` up to the
cost known so far, so usage recorded after a fallback charge, or a
settlement after expiry, never charges the same credits twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from config.errors import BadRequest, Conflict

from ..models import EntryKind, LedgerEntry, Reservation, ReservationStatus, ReservationUsage, Wallet
from ..rules import check_positive, company_suspended_check, not_enough_credits, wallet_frozen
from ..selectors import reservation_get, wallet_get
from .debits import give_back
from .ledger import charge, spendable_lots, wallet_lock

MAX_TTL_SECONDS = 86_400


def _release_hold(wallet: Wallet, reservation: Reservation, hold_before: int) -> None:
    """Keep `wallet.reserved` = sum of active holds after `reservation` changed."""
    wallet.reserved -= hold_before - reservation.hold_remaining
    wallet.save(update_fields=["reserved"])


@dataclass(frozen=True)
class ReserveResult:
    reservation: Reservation
    available: int
    created: bool


def reservation_create(
    *,
    product_id: UUID,
    company_id,
    run_id: str,
    amount: int,
    ttl_seconds: int,
    min_available: int | None = None,
    charge_on_expiry: bool = False,
    actor: str = "",
) -> ReserveResult:
    """Hold `amount` credits for `run_id` for `ttl_seconds`. Needs
    `minAvailable` (default `amount`) available; the whole amount is held.
    An active hold of the same run with the same amount is returned
    (`created=False`); with another amount it is 409. 402/423 write nothing."""
    check_positive(amount, field="amount")
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise BadRequest.for_field("ttlSeconds", f"Must be a whole number from 1 to {MAX_TTL_SECONDS}.")
    if min_available is not None and (isinstance(min_available, bool) or min_available < 0):
        raise BadRequest.for_field("minAvailable", "Must be 0 or more.")
    wallet = wallet_get(product_id=product_id, company_id=company_id)
    now = timezone.now()
    with transaction.atomic():
        wallet = wallet_lock(wallet_id=wallet.pk)
        existing = Reservation.objects.filter(wallet=wallet, run_id=run_id, status=ReservationStatus.ACTIVE).first()
        if existing is not None:
            if existing.amount != amount:
                raise Conflict(
                    "This runId already holds credits with another amount.",
                    details={"reservationId": str(existing.pk), "heldAmount": existing.amount},
                )
            return ReserveResult(existing, max(0, wallet.available), created=False)
        if wallet.frozen:
            raise wallet_frozen(wallet)
        company_suspended_check(company_id=wallet.company_id, product_id=wallet.product_id)
        spendable_lots(wallet, now=now)  # sweeps expired lots, so `available` is true
        needed = amount if min_available is None else min_available
        if wallet.debt or wallet.available < needed:
            raise not_enough_credits(required=needed, available=wallet.available, debt=wallet.debt)
        reservation = Reservation.objects.create(
            wallet=wallet, run_id=run_id, amount=amount, charge_on_expiry=charge_on_expiry,
            expires_at=now + timedelta(seconds=ttl_seconds), actor=actor, created_at=now,
        )
        wallet.reserved += amount
        wallet.save(update_fields=["reserved"])
    return ReserveResult(reservation, max(0, wallet.available), created=True)


def reservation_charge_on_expiry_set(*, product_id: UUID, reservation_id, charge_on_expiry: bool) -> Reservation:
    """Mark (or unmark) a run that did chargeable work before its cost is known."""
    reservation = reservation_get(product_id=product_id, reservation_id=reservation_id)
    with transaction.atomic():
        wallet_lock(wallet_id=reservation.wallet_id)
        reservation.refresh_from_db()
        if reservation.status != ReservationStatus.ACTIVE:
            raise Conflict(f"The reservation is {reservation.status}.", details={"status": reservation.status})
        reservation.charge_on_expiry = charge_on_expiry
        reservation.save(update_fields=["charge_on_expiry"])
    return reservation


@dataclass(frozen=True)
class UsageChargeResult:
    reservation: Reservation
    usage: ReservationUsage
    total_balance_after: int
    replayed: bool = False


def reservation_usage_record(
    *, product_id: UUID, reservation_id, usage_id: str, amount: int, metadata: dict | None = None, actor: str = ""
) -> UsageChargeResult:
    """Charge real usage of the run at once, once per `usageId` (a repeat
    with the same amount is a replay, another amount 409). Always allowed:
    frozen, suspended, in debt or after expiry — work done is charged, and
    what the lots cannot cover becomes debt. 409 once settled or released."""
    check_positive(amount, field="amount")
    reservation = reservation_get(product_id=product_id, reservation_id=reservation_id)
    now = timezone.now()
    with transaction.atomic():
        wallet = wallet_lock(wallet_id=reservation.wallet_id)
        reservation.refresh_from_db()
        done = ReservationUsage.objects.filter(reservation=reservation, usage_id=usage_id).first()
        if done is not None:
            if done.amount != amount:
                raise Conflict(
                    "This usageId was already recorded with another amount.",
                    details={"usageId": usage_id, "amount": done.amount},
                )
            return UsageChargeResult(reservation, done, wallet.total, replayed=True)
        if reservation.status in (ReservationStatus.SETTLED, ReservationStatus.RELEASED):
            raise Conflict(f"The reservation is {reservation.status}.", details={"status": reservation.status})
        hold_before = reservation.hold_remaining
        reservation.usage_recorded += amount
        owed = max(0, reservation.usage_recorded - reservation.charged)
        entry = None
        if owed:
            entry = charge(
                wallet, amount=owed, kind=EntryKind.USAGE, now=now, reservation=reservation, job_id=reservation.run_id,
                actor=actor, metadata={"usageId": usage_id}, description=f"Run {reservation.run_id}: usage {usage_id}",
            )
            reservation.charged += owed
        reservation.save(update_fields=["usage_recorded", "charged"])
        _release_hold(wallet, reservation, hold_before)
        usage = ReservationUsage.objects.create(
            reservation=reservation, usage_id=usage_id, amount=amount, charge=owed, entry=entry,
            metadata=metadata or {}, created_at=now,
        )
    return UsageChargeResult(reservation, usage, wallet.total)


@dataclass(frozen=True)
class SettleResult:
    reservation: Reservation
    total_balance_after: int
    replayed: bool = False


def reservation_settle(*, product_id: UUID, reservation_id, amount: int | None = None, actor: str = "") -> SettleResult:
    """Charge what is still owed for the run (`amount` = its total real
    cost, default what /usage recorded) and free the rest of the hold. Also
    after the hold expired (a fallback charge already taken counts towards
    the cost, and what it took beyond the real cost is given back). A repeat
    with the same amount is a replay; 409 once released or settled
    differently."""
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int) or amount < 0):
        raise BadRequest.for_field("amount", "Must be a whole number, 0 or more.")
    reservation = reservation_get(product_id=product_id, reservation_id=reservation_id)
    now = timezone.now()
    with transaction.atomic():
        wallet = wallet_lock(wallet_id=reservation.wallet_id)
        reservation.refresh_from_db()
        if reservation.status == ReservationStatus.SETTLED:
            if amount is None or amount == reservation.settled_amount:
                return SettleResult(reservation, wallet.total, replayed=True)
            raise Conflict(
                "The reservation was already settled with another amount.",
                details={"status": reservation.status, "settledAmount": reservation.settled_amount},
            )
        if reservation.status == ReservationStatus.RELEASED:
            raise Conflict("The reservation was released.", details={"status": reservation.status})
        cost = reservation.usage_recorded if amount is None else amount
        hold_before = reservation.hold_remaining
        owed = max(0, cost - reservation.charged)
        if owed:
            charge(
                wallet, amount=owed, kind=EntryKind.USAGE, now=now, reservation=reservation,
                job_id=reservation.run_id, actor=actor, description=f"Run {reservation.run_id}: settlement",
            )
            reservation.charged += owed
        elif reservation.charged > cost:
            _fallback_true_up(wallet, reservation, excess=reservation.charged - cost, now=now, actor=actor)
        reservation.released = hold_before - min(hold_before, owed) if reservation.status == ReservationStatus.ACTIVE else 0
        reservation.status = ReservationStatus.SETTLED
        reservation.settled_amount = cost
        reservation.settle_charge = owed
        reservation.closed_at = now
        reservation.save()
        wallet.reserved -= hold_before
        wallet.save(update_fields=["reserved"])
    return SettleResult(reservation, wallet.total)


def _fallback_true_up(wallet: Wallet, reservation: Reservation, *, excess: int, now, actor: str) -> None:
    """A fallback charge taken at expiry beyond the run's real cost goes back
    to the lots it came from (a `refund` of the fallback entry)."""
    fallback = LedgerEntry.objects.filter(reservation=reservation, kind=EntryKind.FALLBACK).first()
    if fallback is None:
        return
    back = min(excess, -fallback.amount)
    _, refunded, forfeited = give_back(
        wallet, source=fallback, amount=back, kind=EntryKind.REFUND, now=now, reservation=reservation,
        job_id=reservation.run_id, actor=actor, reason="Settled below the fallback charge",
        description=f"Run {reservation.run_id}: fallback above the real cost returned",
    )
    reservation.charged -= refunded + forfeited


def reservation_release(*, product_id: UUID, reservation_id, actor: str = "") -> SettleResult:
    """Free the hold; nothing is charged. A repeat is a replay; 409 once settled or expired."""
    reservation = reservation_get(product_id=product_id, reservation_id=reservation_id)
    now = timezone.now()
    with transaction.atomic():
        wallet = wallet_lock(wallet_id=reservation.wallet_id)
        reservation.refresh_from_db()
        if reservation.status == ReservationStatus.RELEASED:
            return SettleResult(reservation, wallet.total, replayed=True)
        if reservation.status != ReservationStatus.ACTIVE:
            raise Conflict(f"The reservation is {reservation.status}.", details={"status": reservation.status})
        hold_before = reservation.hold_remaining
        reservation.status = ReservationStatus.RELEASED
        reservation.released = hold_before
        reservation.closed_at = now
        reservation.save(update_fields=["status", "released", "closed_at"])
        wallet.reserved -= hold_before
        wallet.save(update_fields=["reserved"])
    return SettleResult(reservation, wallet.total)


def reservation_expire(*, reservation_id: UUID, now=None) -> Reservation | None:
    """End one stale hold: a run that recorded usage or asked `chargeOnExpiry`
    is charged up to its hold (`fallback`), one that recorded none is freed.
    Does nothing if the reservation ended or was extended meanwhile."""
    now = now or timezone.now()
    reservation = Reservation.objects.filter(pk=reservation_id).only("wallet_id").first()
    if reservation is None:
        return None
    with transaction.atomic():
        wallet = wallet_lock(wallet_id=reservation.wallet_id)
        reservation.refresh_from_db()
        if reservation.status != ReservationStatus.ACTIVE or reservation.expires_at > now:
            return None
        hold_before = reservation.hold_remaining
        fallback = 0
        if (reservation.usage_recorded or reservation.charge_on_expiry) and hold_before:
            fallback = hold_before
            charge(
                wallet, amount=fallback, kind=EntryKind.FALLBACK, now=now, reservation=reservation,
                job_id=reservation.run_id, actor="system:credits.expire_reservations",
                description=f"Run {reservation.run_id}: hold expired, charged up to the hold",
            )
            reservation.charged += fallback
        reservation.status = ReservationStatus.EXPIRED
        reservation.released = hold_before - fallback
        reservation.closed_at = now
        reservation.save(update_fields=["status", "released", "closed_at", "charged"])
        wallet.reserved -= hold_before
        wallet.save(update_fields=["reserved"])
    return reservation


def reservations_expire(*, now=None, batch_size: int = 500) -> int:
    """The `expire_reservations` job: expire every active hold past its TTL."""
    now = now or timezone.now()
    ids = list(
        Reservation.objects.filter(status=ReservationStatus.ACTIVE, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:batch_size]
    )
    return sum(1 for pk in ids if reservation_expire(reservation_id=pk, now=now) is not None)
