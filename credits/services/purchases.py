"""Credits bought with money (SPEC §7): the credits side of a purchase.

Billing owns the purchase (the PaymentIntent, refunds, disputes) and calls
these; credits owns the lot, the ledger and the rule that a PaymentIntent
adds at most one lot (a unique index on the lot). Both functions are
idempotent and take the wallet lock, so concurrent callers (the webhook and
the synchronous confirmation at once) land a purchase once and never take
back more than asked."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from ..models import Bucket, CreditLot, EntryKind, LedgerEntry, LotOrigin
from ..rules import check_positive
from .ledger import entry_apply, wallet_lock
from .wallets import lot_add, wallet_get_or_create


@dataclass(frozen=True)
class PurchaseLanded:
    entry: LedgerEntry
    created: bool


def purchase_key(payment_intent_id: str) -> str:
    return f"purchase:{payment_intent_id}"


def credits_purchase_land(
    *, company_id: UUID, product_id: UUID, credits: int, payment_intent_id: str, actor: str, description: str = ""
) -> PurchaseLanded:
    """Add the purchase's `credits` as a top-up lot (no expiry), once per
    PaymentIntent: a second call returns the first entry (`created=False`).
    Allowed on a frozen wallet (the money was taken)."""
    check_positive(credits, field="credits")
    wallet = wallet_get_or_create(company_id=company_id, product_id=product_id)
    with transaction.atomic():
        wallet = wallet_lock(wallet_id=wallet.pk)
        existing = LedgerEntry.objects.filter(
            product_id=product_id, idempotency_key=purchase_key(payment_intent_id)
        ).first()
        if existing is not None:
            return PurchaseLanded(entry=existing, created=False)
        entry, _lot = lot_add(
            wallet, kind=EntryKind.PURCHASE, bucket=Bucket.TOPUP, amount=credits, origin=LotOrigin.PAYMENT_INTENT,
            now=timezone.now(), lot_fields={"stripe_payment_intent_id": payment_intent_id},
            idempotency_key=purchase_key(payment_intent_id), actor=actor,
            description=description or f"{credits} credits purchased",
        )
    return PurchaseLanded(entry=entry, created=True)


def credits_purchase_reversed(*, product_id: UUID, payment_intent_id: str) -> int:
    """Credits already taken back from the purchase of this PaymentIntent."""
    purchase = LedgerEntry.objects.filter(product_id=product_id, idempotency_key=purchase_key(payment_intent_id)).first()
    if purchase is None:
        return 0
    taken = LedgerEntry.objects.filter(reference=purchase, kind=EntryKind.REVERSAL).aggregate(s=Sum("amount"))["s"]
    return -(taken or 0)


def credits_purchase_reverse_to(
    *, product_id: UUID, payment_intent_id: str, reversed_total: int, reason: str, actor: str
) -> LedgerEntry | None:
    """Make what was taken back from the purchase add up to `reversed_total`
    credits (never more than it brought): one `reversal` entry for the
    difference, from the purchase's lot first; what that lot no longer holds
    becomes debt (paid by the next credits that arrive). None when nothing
    is left to take. Allowed on a frozen wallet."""
    purchase = LedgerEntry.objects.select_related("lot").filter(
        product_id=product_id, idempotency_key=purchase_key(payment_intent_id)
    ).first()
    if purchase is None:
        return None
    with transaction.atomic():
        wallet = wallet_lock(wallet_id=purchase.wallet_id)
        already = -(
            LedgerEntry.objects.filter(reference=purchase, kind=EntryKind.REVERSAL).aggregate(s=Sum("amount"))["s"] or 0
        )
        lot = CreditLot.objects.get(pk=purchase.lot_id)
        due = min(reversed_total, lot.amount) - already
        if due <= 0:
            return None
        from_lot = min(lot.remaining, due)
        return entry_apply(
            wallet, kind=EntryKind.REVERSAL, now=timezone.now(), lot_deltas=[(lot, -from_lot)],
            debt_delta=due - from_lot, reference=purchase, lot=lot, reason=reason[:500], actor=actor,
            description=f"{due} purchased credits taken back" + (f" ({due - from_lot} as debt)" if due > from_lot else ""),
        )
