"""Credit-priced usage (SPEC §5): what metering's track calls, inside the
transaction of its usage event, to charge `billable units × creditCost`.

A track charge is a debit like any other (a `usage` entry, refundable by
its jobId = the event id and sourceService `usage:<featureCode>`), with two
differences: a company without a wallet cannot pay (402, not 404), and it is
never replayed here — the track's own idempotency answers a retry before it
gets this far. Lock order: metering locks the meter rows first, then these
wallet rows (a plain debit locks only a wallet), so no cycle can form."""

from __future__ import annotations

from uuid import UUID

from django.utils import timezone

from config.errors import ApplicationError

from ..models import LedgerEntry, Wallet
from ..rules import USAGE_SOURCE_PREFIX, company_suspended_check, default_debit_key, not_enough_credits, wallet_frozen
from .debits import debit_locked
from .ledger import spendable_lots, wallet_lock, wallet_lock_visible


def usage_source_service(feature_code: str) -> str:
    return f"{USAGE_SOURCE_PREFIX}{feature_code}"


def usage_charge(*, product_id: UUID, company_id: UUID, amount: int, event_id, feature_code: str) -> LedgerEntry:
    """Debit `amount` credits for one tracked event, in the caller's
    transaction (the wallet stays locked until it commits). 402 when the
    wallet (or its absence) cannot cover it, 423 when frozen."""
    wallet = wallet_lock_visible(product_id=product_id, company_id=company_id)
    if wallet is None:
        raise not_enough_credits(required=amount, available=0)
    source_service = usage_source_service(feature_code)
    return debit_locked(
        wallet=wallet,
        amount=amount,
        job_id=str(event_id),
        source_service=source_service,
        idempotency_key=default_debit_key(job_id=str(event_id), source_service=source_service),
        actor="system:metering.usage_track",
        description=f"{feature_code} usage",
    )


class UsageCreditBudget:
    """What each company's wallet can still pay within one batch of tracks,
    so that each event is judged on its own (SPEC §5): the wallets are
    locked (in primary-key order) when the budget is made, and every event
    admitted is charged by `usage_charge` later in the same transaction."""

    def __init__(self, *, product_id: UUID, company_ids):
        self._available: dict[UUID, int] = {}
        self._refusal: dict[UUID, ApplicationError] = {}
        now = timezone.now()
        ids = list(
            Wallet.objects.filter(product_id=product_id, company_id__in=set(company_ids))
            .order_by("pk")
            .values_list("pk", "company_id")
        )
        for wallet_id, company_id in ids:
            wallet = wallet_lock(wallet_id=wallet_id)
            spendable_lots(wallet, now=now)  # sweeps expired lots: `available` is true
            if wallet.frozen:
                self._refusal[company_id] = wallet_frozen(wallet)
                continue
            try:
                company_suspended_check(company_id=company_id, product_id=product_id)
            except ApplicationError as error:
                self._refusal[company_id] = error
                continue
            self._available[company_id] = 0 if wallet.debt else max(0, wallet.available)
            if wallet.debt:
                self._refusal[company_id] = not_enough_credits(required=1, available=0, debt=wallet.debt)

    def admit(self, *, company_id: UUID, amount: int) -> ApplicationError | None:
        """None if the company's wallet can pay `amount` more (and books it), else the error."""
        if amount <= 0:
            return None
        if company_id in self._refusal:
            return self._refusal[company_id]
        available = self._available.get(company_id, 0)
        if amount > available:
            return not_enough_credits(required=amount, available=available)
        self._available[company_id] = available - amount
        return None
