"""Auto-refill, the credits side (SPEC §7): settings, the refill request a
debit writes in its own transaction (one in flight per wallet: a partial
unique index, inserted with ON CONFLICT DO NOTHING so a concurrent debit
never fails for it), and the request's life (claimed and finished by
billing's `auto_refill` job, which makes the PaymentIntent). A signal sent on
commit (`refill_requested`) lets billing enqueue the job without credits
importing billing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Sum
from django.dispatch import Signal
from django.utils import timezone

from config.errors import BadRequest

from ..models import AutoRefill, RefillRequest, RefillStatus, Wallet
from .ledger import wallet_lock
from .wallets import wallet_threshold_set

# Sent on commit of a transaction that wrote a refill request: kwargs wallet_id.
refill_requested = Signal()

# After a failed refill, debits do not ask again for this long (or until the
# settings are saved again): a declined card is not retried on every debit.
FAILURE_PAUSE = timedelta(hours=24)


@dataclass(frozen=True)
class AutoRefillSettings:
    enabled: bool
    threshold: int
    credits: int
    amount: int
    currency: str
    monthly_spend_limit: int | None
    payment_method_id: str | None
    low_balance_threshold: int | None


def auto_refill_set(*, wallet: Wallet, settings: AutoRefillSettings, actor: str) -> AutoRefill:
    """Save the settings (and the wallet's low-balance threshold when given);
    clears the last failure, so a fixed card is tried again."""
    for field, value in (("threshold", settings.threshold), ("credits", settings.credits),
                         ("amount", settings.amount)):
        if value is None or value < (0 if field == "threshold" else 1):
            raise BadRequest.for_field(field, "Must be a whole number" + (" ≥ 0." if field == "threshold" else " ≥ 1."))
    if settings.monthly_spend_limit is not None and settings.monthly_spend_limit < settings.amount:
        raise BadRequest.for_field("monthlySpendLimit", "Must be at least one refill's amount.")
    with transaction.atomic():
        locked = wallet_lock(wallet_id=wallet.pk)
        refill, _ = AutoRefill.objects.update_or_create(wallet=locked, defaults={
            "enabled": settings.enabled, "threshold": settings.threshold, "credits": settings.credits,
            "amount": settings.amount, "currency": settings.currency.lower(),
            "monthly_spend_limit": settings.monthly_spend_limit, "payment_method_id": settings.payment_method_id or "",
            "last_failure_at": None, "last_failure_code": "", "last_failure_message": "",
            "updated_at": timezone.now(), "updated_by": actor[:300],
        })
        locked.auto_refill_threshold = settings.threshold if settings.enabled else None
        locked.save(update_fields=["auto_refill_threshold"])
    if settings.low_balance_threshold is not None:
        wallet_threshold_set(wallet=wallet, low_balance_threshold=settings.low_balance_threshold,
                             reason="auto-refill settings", actor=actor)
    return refill


def refill_check(wallet: Wallet) -> None:
    """Called by the ledger core, in the transaction of a movement that
    lowered the balance (wallet locked): below the threshold → a refill
    request, unless one is in flight or the last refill failed recently."""
    threshold = wallet.auto_refill_threshold
    if threshold is None or wallet.total >= threshold:
        return
    if RefillRequest.objects.filter(wallet_id=wallet.pk, status__in=[RefillStatus.PENDING, RefillStatus.PROCESSING]).exists():
        return
    failed_at = AutoRefill.objects.filter(wallet_id=wallet.pk).values_list("last_failure_at", flat=True).first()
    if failed_at is not None and failed_at > timezone.now() - FAILURE_PAUSE:
        return
    created = RefillRequest.objects.bulk_create(
        [RefillRequest(wallet_id=wallet.pk, balance_at_request=wallet.total)], ignore_conflicts=True
    )
    if created:
        wallet_id = wallet.pk
        transaction.on_commit(lambda: refill_requested.send(sender=RefillRequest, wallet_id=wallet_id))


def refill_requests_claim(*, limit: int = 20) -> list[RefillRequest]:
    """Pending requests, marked processing (SKIP LOCKED: any number of workers)."""
    with transaction.atomic():
        claimed = list(
            RefillRequest.objects.select_for_update(skip_locked=True)
            .filter(status=RefillStatus.PENDING).order_by("created_at")[:limit]
        )
        for request in claimed:
            request.status = RefillStatus.PROCESSING
            request.attempts += 1
            request.save(update_fields=["status", "attempts"])
    return claimed


def refill_request_finish(
    *, request: RefillRequest, status: str, payment_intent_id: str = "", credits: int | None = None,
    amount: int | None = None, currency: str = "", error_code: str = "", error_message: str = "",
) -> RefillRequest:
    """Record the outcome; a failure is also kept on the settings (shown in
    the API and the admin). `pending` puts it back for the next run."""
    now = timezone.now()
    request.status = status
    request.payment_intent_id = payment_intent_id or request.payment_intent_id
    request.credits, request.amount, request.currency = credits, amount, currency
    request.error_code, request.error_message = error_code[:100], error_message[:500]
    request.finished_at = None if status == RefillStatus.PENDING else now
    with transaction.atomic():
        request.save()
        if status == RefillStatus.FAILED:
            AutoRefill.objects.filter(wallet_id=request.wallet_id).update(
                last_failure_at=now, last_failure_code=error_code[:100], last_failure_message=error_message[:500])
    return request


def refill_spent_this_month(*, wallet_id, now: datetime | None = None) -> int:
    """Money spent on succeeded refills this calendar month (UTC), minor units."""
    now = now or timezone.now()
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return RefillRequest.objects.filter(
        wallet_id=wallet_id, status=RefillStatus.SUCCEEDED, finished_at__gte=month
    ).aggregate(s=Sum("amount"))["s"] or 0
