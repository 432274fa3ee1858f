"""Reads of the credits app, scoped to the caller's product like every read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db.models import Min, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from companies.selectors import company_get_visible, company_id_get_visible
from config.errors import NotFound

from .models import CreditLot, LedgerEntry, Reservation, Wallet
from .rules import no_wallet


def company_id_resolve(*, product_id: UUID, company_id=None, external_org_id: str | None = None) -> UUID:
    """The visible company named by id or by the product's external org id
    (404 otherwise): companies' one visibility rule, one query, no company row."""
    return company_id_get_visible(product_id=product_id, company_id=company_id, external_org_id=external_org_id)


def wallet_get(*, product_id: UUID, company_id=None, external_org_id: str | None = None) -> Wallet:
    """The wallet of a company visible to the product; 404 if none."""
    resolved = company_id_resolve(product_id=product_id, company_id=company_id, external_org_id=external_org_id)
    wallet = Wallet.objects.filter(company_id=resolved, product_id=product_id).first()
    if wallet is None:
        raise no_wallet()
    return wallet


def wallet_find(*, product_id: UUID, company_id: UUID) -> Wallet | None:
    return Wallet.objects.filter(company_id=company_id, product_id=product_id).first()


def reservation_get(*, product_id: UUID, reservation_id) -> Reservation:
    """A reservation of this product's wallets whose company is still visible (404 otherwise)."""
    try:
        pk = UUID(str(reservation_id))
    except ValueError:
        raise NotFound("Reservation not found.") from None
    reservation = Reservation.objects.select_related("wallet").filter(pk=pk, wallet__product_id=product_id).first()
    if reservation is None:
        raise NotFound("Reservation not found.")
    company_get_visible(product_id=product_id, company_id=reservation.wallet.company_id)
    return reservation


@dataclass(frozen=True)
class WalletSummary:
    wallet: Wallet | None
    balances: dict[str, int]
    debt: int
    total: int
    reserved: int
    available: int
    next_expiry: dict | None
    cycle: dict | None


def wallet_summary(*, wallet: Wallet | None, now: datetime | None = None) -> WalletSummary:
    """What GET /credits answers. Lots past their expiry that the sweep has
    not reached yet are left out already."""
    now = now or timezone.now()
    if wallet is None:
        zero = {"subscription": 0, "promotional": 0, "topup": 0}
        return WalletSummary(None, zero, 0, 0, 0, 0, None, None)
    balances = {str(k): v for k, v in wallet.bucket_balances().items()}
    stale = (
        CreditLot.objects.filter(wallet=wallet, remaining__gt=0, expires_at__lte=now)
        .values("bucket")
        .annotate(left=Sum("remaining"))
    )
    for row in stale:
        balances[row["bucket"]] -= row["left"]
    total = sum(balances.values()) - wallet.debt
    upcoming = CreditLot.objects.filter(wallet=wallet, remaining__gt=0, expires_at__gt=now)
    first = upcoming.aggregate(at=Min("expires_at"))["at"]
    next_expiry = None
    if first is not None:
        amount = upcoming.filter(expires_at=first).aggregate(s=Sum("remaining"))["s"]
        next_expiry = {"amount": amount, "at": first}
    cycle_lot = (
        CreditLot.objects.filter(wallet=wallet, bucket="subscription", cycle_period_start__isnull=False)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("-cycle_period_start")
        .first()
    )
    cycle = None
    if cycle_lot is not None:
        cycle = {
            "tierCode": cycle_lot.cycle_tier_code,
            "creditsPerCycle": cycle_lot.amount,
            "periodStart": cycle_lot.cycle_period_start,
            "periodEnd": cycle_lot.expires_at,
        }
    return WalletSummary(
        wallet=wallet,
        balances=balances,
        debt=wallet.debt,
        total=total,
        reserved=wallet.reserved,
        available=total - wallet.reserved,
        next_expiry=next_expiry,
        cycle=cycle,
    )


def credits_available(*, company_id, product_id) -> int:
    """Credits a debit could take now (0 without a wallet or while it owes
    debt), in one query: for feature checks."""
    now = timezone.now()
    stale = (
        CreditLot.objects.filter(wallet=OuterRef("pk"), remaining__gt=0, expires_at__lte=now)
        .values("wallet")
        .annotate(left=Sum("remaining"))
        .values("left")
    )
    wallet = (
        Wallet.objects.filter(company_id=company_id, product_id=product_id)
        .annotate(stale=Coalesce(Subquery(stale), 0))
        .first()
    )
    if wallet is None or wallet.debt:
        return 0
    return max(0, wallet.available - wallet.stale)


def ledger_entries(*, wallet: Wallet | None, kind: str | None = None) -> QuerySet[LedgerEntry]:
    """A wallet's ledger, newest first (none without a wallet)."""
    if wallet is None:
        return LedgerEntry.objects.none().order_by("-created_at", "-id")
    entries = LedgerEntry.objects.filter(wallet=wallet)
    if kind:
        entries = entries.filter(kind=kind)
    return entries.order_by("-created_at", "-id")


def auto_refill_data(wallet: Wallet | None) -> dict | None:
    """The `autoRefill` block of SPEC §7's balance answer (None when never set)."""
    from .models import AutoRefill, RefillRequest, RefillStatus
    from .services.refills import refill_spent_this_month

    if wallet is None:
        return None
    settings = AutoRefill.objects.filter(wallet=wallet).first()
    if settings is None:
        return None
    in_flight = RefillRequest.objects.filter(
        wallet=wallet, status__in=[RefillStatus.PENDING, RefillStatus.PROCESSING]).exists()
    return {
        "enabled": settings.enabled, "threshold": settings.threshold, "credits": settings.credits,
        "amount": settings.amount, "currency": settings.currency, "monthlySpendLimit": settings.monthly_spend_limit,
        "spentThisMonth": refill_spent_this_month(wallet_id=wallet.pk),
        "paymentMethodId": settings.payment_method_id or None, "inFlight": in_flight,
        "lastFailure": {"at": settings.last_failure_at.isoformat().replace("+00:00", "Z"), "code": settings.last_failure_code,
                        "message": settings.last_failure_message} if settings.last_failure_at else None,
    }


def wallets_use(*, product_id: UUID, company_ids, kinds, since: datetime) -> dict[UUID, tuple[int, int]]:
    """{company_id: (available credits, credits moved by entries of `kinds`
    since `since`, as a positive number)} of the product's wallets: two
    queries (insights' credit runway). Companies without a wallet are absent."""
    wallets = {
        wallet.pk: wallet
        for wallet in Wallet.objects.filter(product_id=product_id, company_id__in=list(company_ids))
    }
    if not wallets:
        return {}
    moved = dict(
        LedgerEntry.objects.filter(wallet_id__in=list(wallets), kind__in=list(kinds), created_at__gte=since)
        .values("wallet_id")
        .annotate(total=Sum("amount"))
        .order_by()
        .values_list("wallet_id", "total")
    )
    return {
        wallet.company_id: (wallet.available, abs(int(moved.get(pk) or 0)))
        for pk, wallet in wallets.items()
    }


def ledger_totals_by_day(*, product_id: UUID, start: datetime, end: datetime) -> dict[tuple, int]:
    """{(UTC day, kind): signed sum} of the product's ledger entries in [start,
    end): one query over the wallets' (wallet, created_at) index."""
    from datetime import UTC

    from django.db.models.functions import TruncDate

    rows = (
        LedgerEntry.objects.filter(
            wallet_id__in=Wallet.objects.filter(product_id=product_id).values("pk"), created_at__gte=start, created_at__lt=end
        )
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "kind")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return {(row["day"], row["kind"]): int(row["total"] or 0) for row in rows}
