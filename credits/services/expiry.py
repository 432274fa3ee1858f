"""The `expire_credits` job: an `expiry` entry for what is left in each lot
past its expiry (debits also sweep their own wallet's expired lots first)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ..models import CreditLot
from .ledger import spendable_lots, wallet_lock


def credit_lots_expire(*, now=None, batch_size: int = 1000) -> int:
    """Sweep expired lots, one short transaction per wallet; returns the
    number of wallets swept. Safe to run concurrently with debits and with
    itself: the sweep happens under the wallet lock and re-reads the lots."""
    now = now or timezone.now()
    wallet_ids = list(
        CreditLot.objects.filter(remaining__gt=0, expires_at__lte=now)
        .order_by("wallet_id")
        .values_list("wallet_id", flat=True)
        .distinct()[:batch_size]
    )
    for wallet_id in wallet_ids:
        with transaction.atomic():
            spendable_lots(wallet_lock(wallet_id=wallet_id), now=now)
    return len(wallet_ids)
