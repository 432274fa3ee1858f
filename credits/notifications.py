"""The product-facing events of the wallet (SPEC §11): `credits.low_balance`
each time the balance falls below the wallet's threshold, `credits.depleted`
when it reaches zero. Emitted in the transaction of the movement (outbox).

`_emit` is the single place credits talks to the notifications outbox."""

from __future__ import annotations

from notifications.services import event_emit


def _emit(*, product_id, event_type: str, data: dict) -> None:
    event_emit(product=product_id, type=event_type, data=data)


def _payload(wallet, *, after: int, entry) -> dict:
    return {
        "companyId": str(wallet.company_id),
        "walletId": str(wallet.pk),
        "total": after,
        "available": wallet.available,
        "lowBalanceThreshold": wallet.low_balance_threshold,
        "ledgerEntryId": str(entry.pk),
    }


def balance_fell(wallet, *, before: int, after: int, entry) -> None:
    """Called by the ledger core when a movement lowered the balance."""
    threshold = wallet.low_balance_threshold
    if threshold is not None and before >= threshold > after:
        _emit(product_id=wallet.product_id, event_type="credits.low_balance", data=_payload(wallet, after=after, entry=entry))
    if before > 0 >= after:
        _emit(product_id=wallet.product_id, event_type="credits.depleted", data=_payload(wallet, after=after, entry=entry))
