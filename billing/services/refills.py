"""Auto-refill, the billing side (SPEC §7): the `auto_refill` job turns each
pending refill request (written by credits in a debit's transaction) into
one off-session PaymentIntent through the purchase service, within the
wallet's `monthlySpendLimit`. A failure is recorded on the request and the
settings (shown in the API and admin) and notified (`credits.refill_failed`);
Stripe unreachable puts the request back for the next run."""

from __future__ import annotations

import logging

from billing.models import PurchaseOrigin, PurchaseStatus
from config.errors import ApplicationError, ServiceUnavailable
from credits.models import AutoRefill, RefillStatus
from credits.services.refills import refill_request_finish, refill_requests_claim, refill_spent_this_month
from entitlements.actors import Actor
from notifications.services import event_emit

from .purchases import purchase_create

logger = logging.getLogger("saasdesk.billing.refills")
ACTOR = Actor.system("billing.auto_refill")


def auto_refill_run(*, limit: int = 20) -> dict[str, int]:
    counts = {"succeeded": 0, "failed": 0, "retry": 0}
    for request in refill_requests_claim(limit=limit):
        wallet = request.wallet
        settings = AutoRefill.objects.filter(wallet=wallet).first()
        if settings is None or not settings.enabled:
            refill_request_finish(request=request, status=RefillStatus.FAILED, error_code="disabled",
                                  error_message="Auto-refill is off.")
            counts["failed"] += 1
            continue
        spent = refill_spent_this_month(wallet_id=wallet.pk)
        if settings.monthly_spend_limit is not None and spent + settings.amount > settings.monthly_spend_limit:
            _failed(request, settings, code="monthly_spend_limit",
                    message=f"This refill would exceed the monthly spend limit ({spent} of "
                            f"{settings.monthly_spend_limit} spent).")
            counts["failed"] += 1
            continue
        try:
            result = purchase_create(
                product_id=wallet.product_id, company_id=wallet.company_id, credits=settings.credits,
                amount=settings.amount, currency=settings.currency, idempotency_key=f"auto-refill:{request.pk}",
                actor=ACTOR, payment_method_id=settings.payment_method_id or None, off_session=True,
                origin=PurchaseOrigin.AUTO_REFILL,
            )
        except ServiceUnavailable as error:
            refill_request_finish(request=request, status=RefillStatus.PENDING, error_code="stripe_unavailable",
                                  error_message=error.message)
            counts["retry"] += 1
            continue
        except ApplicationError as error:
            _failed(request, settings, code=str((error.details or {}).get("declineCode") or error.code),
                    message=error.message)
            counts["failed"] += 1
            continue
        purchase = result.purchase
        if purchase.status != PurchaseStatus.SUCCEEDED:
            _failed(request, settings, code=purchase.failure_code or "requires_action",
                    message=purchase.failure_message or "The off-session payment did not succeed.",
                    payment_intent_id=purchase.stripe_payment_intent_id)
            counts["failed"] += 1
            continue
        refill_request_finish(request=request, status=RefillStatus.SUCCEEDED,
                              payment_intent_id=purchase.stripe_payment_intent_id, credits=purchase.credits,
                              amount=purchase.amount, currency=purchase.currency)
        counts["succeeded"] += 1
    return counts


def _failed(request, settings: AutoRefill, *, code: str, message: str, payment_intent_id: str = "") -> None:
    refill_request_finish(request=request, status=RefillStatus.FAILED, error_code=code, error_message=message,
                          payment_intent_id=payment_intent_id, credits=settings.credits, amount=settings.amount,
                          currency=settings.currency)
    logger.info("auto-refill failed", extra={"wallet": str(request.wallet_id), "code": code})
    event_emit(product=request.wallet.product_id, type="credits.refill_failed", data={
        "companyId": str(request.wallet.company_id), "walletId": str(request.wallet_id),
        "refillRequestId": str(request.pk), "code": code, "message": message, "credits": settings.credits,
        "amount": settings.amount, "currency": settings.currency,
    })
