"""Credit purchases (SPEC §7): credits bought through a Stripe PaymentIntent.

One row per PaymentIntent (`CreditPurchase`), made by whichever comes first
of the synchronous confirmation (`POST /credits/purchases`) and the webhooks
(`payment_intent.*`, `charge.refunded`, `charge.dispute.*`) — the
PaymentIntent's metadata names the company, product and credits, so a
PaymentIntent made at Stripe whose answer we never saw (a timeout) is still
found and credited by its webhook. Every change of a purchase happens under
its row lock, from the PaymentIntent and charge as Stripe has them now (never
from an event's copy), so any order or repetition of events ends in the same
state:

- credits land once per PaymentIntent when it has succeeded (credits service,
  unique per PaymentIntent);
- refunds, partial and repeated, take back round(credits × refunded / amount)
  half-up in total (`reversal` entries for the difference);
- a purchase fully refunded before it was credited is a tombstone: never credited;
- a dispute freezes the wallet until staff unfreeze it.
Nothing about the card is logged or stored."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import stripe
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import CreditPurchase, PurchaseOrigin, PurchaseStatus
from billing.stripe_client import (
    stripe_retrieve_or_none,
    card_errors_as_payment_required,
    get_stripe_client,
    stripe_errors_as_unavailable,
)
from companies.models import Product
from companies.selectors import company_get_visible
from config.errors import BadRequest, Conflict, NotFound
from credits.rules import wallet_frozen
from credits.selectors import wallet_find
from credits.services import (
    credits_purchase_land,
    credits_purchase_reverse_to,
    credits_purchase_reversed,
    wallet_freeze,
    wallet_get_or_create,
)
from companies.actors import Actor
from notifications.services import event_emit

from . import stripe_objects
from .customers import default_payment_method_id, payment_method_of_customer, stripe_customer_ensure, stripe_idempotency_key

logger = logging.getLogger("saasdesk.billing.purchases")

# Marks a PaymentIntent as a SaaSDesk credit purchase (its metadata).
METADATA_KIND = "saasdesk_credit_purchase"
MAX_CREDITS = 10_000_000
MAX_AMOUNT = 100_000_000  # minor units


@dataclass(frozen=True)
class PurchaseResult:
    purchase: CreditPurchase
    client_secret: str | None
    replayed: bool = False


def reversal_credits(*, credits: int, refunded: int, amount: int) -> int:
    """SPEC §7: the credits a refund of `refunded` (of `amount`) takes back in
    total: round(credits × refunded / amount), half-up, never more than `credits`."""
    refunded = min(max(refunded, 0), amount)
    return (2 * credits * refunded + amount) // (2 * amount)


def _intent_retrieve(payment_intent_id: str) -> Any | None:
    return stripe_retrieve_or_none(get_stripe_client().v1.payment_intents, payment_intent_id, operation="payment_intent.retrieve")


def _charge_retrieve(charge_id: str) -> Any | None:
    return stripe_retrieve_or_none(get_stripe_client().v1.charges, charge_id, operation="charge.retrieve")


def _check_input(*, credits: int, amount: int, currency: str) -> str:
    for field, value, top in (("credits", credits, MAX_CREDITS), ("amount", amount, MAX_AMOUNT)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise BadRequest.for_field(field, f"Must be a whole number from 1 to {top}.")
    currency = (currency or "").strip().lower()
    if len(currency) != 3 or not currency.isalpha():
        raise BadRequest.for_field("currency", "Must be an ISO 4217 code, e.g. eur.")
    return currency


def purchase_create(
    *,
    product_id: UUID,
    company_id,
    credits: int,
    amount: int,
    currency: str,
    idempotency_key: str,
    actor: Actor,
    payment_method_id: str | None = None,
    off_session: bool = False,
    origin: str = PurchaseOrigin.API,
) -> PurchaseResult:
    """Buy `credits` for `amount` (minor units of `currency`) with a
    PaymentIntent, confirmed at once with `payment_method_id` or the
    company's default card; without a card the PaymentIntent waits for the
    product to confirm it with Stripe.js (`client_secret`), and the webhook
    lands the credits. `idempotency_key` is passed to Stripe: a retry gets
    the same PaymentIntent, never a second charge. 402 with
    `details.declineCode` on a declined card (nothing is stored or granted);
    423 on a frozen wallet; 503 when Stripe is unreachable (nothing stored)."""
    currency = _check_input(credits=credits, amount=amount, currency=currency)
    company = company_get_visible(product_id=product_id, company_id=company_id)
    replay = CreditPurchase.objects.filter(product_id=product_id, idempotency_key=idempotency_key).first()
    if replay is not None:
        if (replay.company_id, replay.credits, replay.amount, replay.currency) != (company.pk, credits, amount, currency):
            raise Conflict("This Idempotency-Key was already used for another purchase.",
                           details={"purchaseId": str(replay.pk)})
        return PurchaseResult(purchase=replay, client_secret=None, replayed=True)
    wallet = wallet_find(product_id=product_id, company_id=company.pk)
    if wallet is not None and wallet.frozen:
        raise wallet_frozen(wallet)
    customer = stripe_customer_ensure(product_id=product_id, company_id=company.pk, actor=actor)
    client = get_stripe_client()
    if payment_method_id:
        payment_method_of_customer(stripe_customer_id=customer.stripe_customer_id, payment_method_id=payment_method_id,
                                   field="paymentMethodId")
    else:
        payment_method_id = default_payment_method_id(client, customer.stripe_customer_id)
    product_code = Product.objects.only("code").get(pk=product_id).code
    params: dict[str, Any] = {
        "amount": amount,
        "currency": currency,
        "customer": customer.stripe_customer_id,
        "description": f"{credits} credits",
        "metadata": {"kind": METADATA_KIND, "company_id": str(company.pk), "product": product_code,
                     "product_id": str(product_id), "credits": str(credits), "origin": origin},
    }
    if payment_method_id:
        params.update(payment_method=payment_method_id, confirm=True)
        if off_session:
            params["off_session"] = True
    key = stripe_idempotency_key("credit-purchase", product_id, idempotency_key)
    try:
        with card_errors_as_payment_required(), stripe_errors_as_unavailable("payment_intent.create"):
            intent = client.v1.payment_intents.create(params, {"idempotency_key": key})
    except stripe.IdempotencyError as error:
        raise Conflict("This Idempotency-Key was already used for another purchase.") from error
    purchase = purchase_sync(intent=intent, idempotency_key=idempotency_key, actor=str(actor))
    return PurchaseResult(purchase=purchase, client_secret=intent.get("client_secret"))


def _purchase_for_intent(intent: Any, *, idempotency_key: str | None, actor: str) -> CreditPurchase | None:
    """The purchase row of this PaymentIntent, made from its metadata if new;
    None when the PaymentIntent is not a SaaSDesk credit purchase."""
    existing = CreditPurchase.objects.filter(stripe_payment_intent_id=intent["id"]).first()
    if existing is not None:
        return existing
    metadata = intent.get("metadata") or {}
    if metadata.get("kind") != METADATA_KIND:
        return None
    try:
        credits = int(metadata["credits"])
        company_id, product_id = UUID(metadata["company_id"]), UUID(metadata["product_id"])
    except (KeyError, ValueError):
        return None
    try:
        with transaction.atomic():
            return CreditPurchase.objects.create(
                company_id=company_id, product_id=product_id, credits=credits, amount=int(intent["amount"]),
                currency=str(intent["currency"]), stripe_payment_intent_id=intent["id"],
                origin=metadata.get("origin") or PurchaseOrigin.API, idempotency_key=idempotency_key, actor=actor[:300],
            )
    except IntegrityError:
        return CreditPurchase.objects.get(stripe_payment_intent_id=intent["id"])


def purchase_sync(*, intent: Any, charge: Any | None = None, idempotency_key: str | None = None,
                  actor: str = "system:billing") -> CreditPurchase | None:
    """Bring the purchase of `intent` (as Stripe has it now) up to date, under
    its row lock: status, credits landed once, refunds taken back, dispute."""
    purchase = _purchase_for_intent(intent, idempotency_key=idempotency_key, actor=actor)
    if purchase is None:
        return None
    charge_id = stripe_objects.object_id(intent.get("latest_charge"))
    if charge is None and charge_id and intent.get("status") == "succeeded":
        charge = _charge_retrieve(charge_id)
    with transaction.atomic():
        purchase = CreditPurchase.objects.select_for_update().get(pk=purchase.pk)
        was_disputed = purchase.disputed
        now = timezone.now()
        if charge is not None:
            purchase.stripe_charge_id = charge["id"]
            purchase.amount_refunded = max(purchase.amount_refunded, int(charge.get("amount_refunded") or 0))
            purchase.disputed = purchase.disputed or bool(charge.get("disputed"))
        status = intent.get("status")
        if purchase.status in (PurchaseStatus.PENDING, PurchaseStatus.FAILED):
            if status == "succeeded":
                if purchase.amount_refunded >= purchase.amount:
                    purchase.status = PurchaseStatus.TOMBSTONED
                else:
                    _land(purchase, actor=actor, now=now)
            elif status == "canceled":
                purchase.status = PurchaseStatus.CANCELED
            elif intent.get("last_payment_error"):
                error = intent["last_payment_error"]
                purchase.status = PurchaseStatus.FAILED
                purchase.failure_code = str(error.get("decline_code") or error.get("code") or "")[:100]
                purchase.failure_message = str(error.get("message") or "")[:500]
        if purchase.status == PurchaseStatus.SUCCEEDED:
            _take_back_refunds(purchase, actor=actor)
        purchase.updated_at = now
        purchase.save()
    if purchase.disputed and not was_disputed:
        _freeze_for_dispute(purchase, charge_id=purchase.stripe_charge_id)
    return purchase


def _land(purchase: CreditPurchase, *, actor: str, now) -> None:
    landed = credits_purchase_land(
        company_id=purchase.company_id, product_id=purchase.product_id, credits=purchase.credits,
        payment_intent_id=purchase.stripe_payment_intent_id, actor=actor,
        description=f"{purchase.credits} credits purchased ({purchase.amount / 100:.2f} {purchase.currency.upper()})",
    )
    purchase.status = PurchaseStatus.SUCCEEDED
    purchase.succeeded_at = purchase.succeeded_at or now
    purchase.ledger_entry_id = landed.entry.pk
    purchase.failure_code = purchase.failure_message = ""
    if landed.created:
        event_emit(product=purchase.product_id, type="credits.purchase_succeeded", data={
            "companyId": str(purchase.company_id), "purchaseId": str(purchase.pk),
            "paymentIntentId": purchase.stripe_payment_intent_id, "credits": purchase.credits,
            "amount": purchase.amount, "currency": purchase.currency,
            "ledgerEntryId": str(landed.entry.pk), "totalBalanceAfter": landed.entry.balance_after,
        })


def _take_back_refunds(purchase: CreditPurchase, *, actor: str) -> None:
    target = reversal_credits(credits=purchase.credits, refunded=purchase.amount_refunded, amount=purchase.amount)
    if target > 0:
        credits_purchase_reverse_to(
            product_id=purchase.product_id, payment_intent_id=purchase.stripe_payment_intent_id,
            reversed_total=target, actor=actor,
            reason=f"Stripe refund of {purchase.amount_refunded / 100:.2f} {purchase.currency.upper()}",
        )
    purchase.credits_reversed = credits_purchase_reversed(
        product_id=purchase.product_id, payment_intent_id=purchase.stripe_payment_intent_id
    )


def _freeze_for_dispute(purchase: CreditPurchase, *, charge_id: str) -> None:
    wallet = wallet_find(product_id=purchase.product_id, company_id=purchase.company_id) or wallet_get_or_create(
        company_id=purchase.company_id, product_id=purchase.product_id
    )
    if not wallet.frozen:
        wallet_freeze(wallet=wallet, reason=f"Stripe dispute on the credit purchase {charge_id or purchase.pk}",
                      actor="system:billing.webhook")


def purchase_sync_by_intent_id(payment_intent_id: str, *, actor: str = "system:billing.webhook") -> CreditPurchase | None:
    intent = _intent_retrieve(payment_intent_id)
    return purchase_sync(intent=intent, actor=actor) if intent is not None else None


def purchase_sync_by_charge_id(charge_id: str, *, actor: str = "system:billing.webhook") -> CreditPurchase | None:
    charge = _charge_retrieve(charge_id)
    payment_intent_id = stripe_objects.object_id(charge.get("payment_intent")) if charge is not None else None
    if not payment_intent_id:
        return None
    intent = _intent_retrieve(payment_intent_id)
    return purchase_sync(intent=intent, charge=charge, actor=actor) if intent is not None else None


def purchase_refund(*, purchase_id, amount: int | None, reason: str, actor: Actor) -> CreditPurchase:
    """Refund (part of) a purchase at Stripe (staff, Billing admin) and take
    back the matching credits at once (the `charge.refunded` webhook finds
    nothing more to do). `amount` in minor units; None = all that is left."""
    purchase = CreditPurchase.objects.filter(pk=purchase_id).first()
    if purchase is None:
        raise NotFound("No such purchase.")
    if purchase.status != PurchaseStatus.SUCCEEDED:
        raise Conflict("Only a succeeded purchase can be refunded.", details={"status": purchase.status})
    left = purchase.amount - purchase.amount_refunded
    if amount is not None and not 1 <= amount <= left or left <= 0:
        raise BadRequest.for_field("amount", f"Must be from 1 to {left} (what is left to refund).")
    reason = (reason or "").strip()
    if not reason:
        raise BadRequest.for_field("reason", "A reason is required.")
    params: dict[str, Any] = {"payment_intent": purchase.stripe_payment_intent_id,
                              "metadata": {"reason": reason[:400]}}
    if amount is not None:
        params["amount"] = amount
    key = stripe_idempotency_key("credit-refund", purchase.pk, purchase.amount_refunded, amount)
    client = get_stripe_client()
    with stripe_errors_as_unavailable("refund.create"):
        try:
            client.v1.refunds.create(params, {"idempotency_key": key})
        except stripe.InvalidRequestError as error:
            raise Conflict(f"Stripe refused the refund: {getattr(error, 'user_message', None) or error.code}") from error
    return purchase_sync_by_charge_id(purchase.stripe_charge_id, actor=str(actor)) or purchase
