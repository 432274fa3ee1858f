"""Subscription credits (SPEC §7): each paid cycle invoice grants the tier's
`creditsPerCycle` as a `subscription` lot expiring at the cycle end, once per
invoice. Billing decides that an invoice is a paid cycle and calls this."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from ..models import Bucket, CreditLot, EntryKind, LedgerEntry, LotOrigin
from ..rules import check_positive
from .wallets import GrantResult, lot_add, wallet_get_or_create
from .ledger import wallet_lock


def cycle_reason(stripe_invoice_id: str) -> str:
    return f"subscription cycle {stripe_invoice_id}"


def credits_cycle_grant(
    *, company_id: UUID, product_id: UUID, amount: int, stripe_invoice_id: str, expires_at: datetime,
    tier_code: str, period_start: datetime | None, actor: str,
) -> GrantResult:
    """A `subscription` lot of `amount` for the paid invoice, expiring at
    `expires_at` (the cycle end), and its `grant` entry; once per invoice (a
    repeat returns the first, `created=False`). Allowed on a frozen wallet."""
    check_positive(amount, field="creditsPerCycle")
    wallet = wallet_get_or_create(company_id=company_id, product_id=product_id)
    with transaction.atomic():
        wallet = wallet_lock(wallet_id=wallet.pk)
        lot = CreditLot.objects.filter(wallet=wallet, stripe_invoice_id=stripe_invoice_id).first()
        if lot is not None:
            entry = LedgerEntry.objects.get(wallet=wallet, kind=EntryKind.GRANT, lot=lot)
            return GrantResult(created=False, entry=entry, lot=lot)
        entry, lot = lot_add(
            wallet, kind=EntryKind.GRANT, bucket=Bucket.SUBSCRIPTION, amount=amount, origin=LotOrigin.INVOICE,
            now=timezone.now(), expires_at=expires_at,
            lot_fields={"stripe_invoice_id": stripe_invoice_id, "cycle_tier_code": tier_code,
                        "cycle_period_start": period_start},
            reason=cycle_reason(stripe_invoice_id), actor=actor,
            description=f"{amount} subscription credits for the {tier_code} cycle",
        )
    return GrantResult(created=True, entry=entry, lot=lot)
