"""Stripe webhooks, the dj-stripe way: verify the signature, store the raw
event once by its id, then process it in its own transaction. Handlers never
trust the payload's copy of an object — events arrive out of order and late —
they re-read the object's current state from Stripe. Failures are recorded on
the stored event and can be reprocessed.

Extension point: `@webhook_handler("payment_intent.succeeded")` registers a
handler for another event type (the credits work registers its purchase and
refund handlers this way)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import BillingProfile, StripeWebhookEvent, Subscription, WebhookEventStatus
from billing.stripe_client import describe, get_stripe_client, stripe_retrieve_or_none
from companies.models import Company, ProductLink
from billing.error_codes import BillingErrorCode
from config.api.parsers import json_loads
from config.errors import ApplicationError, BadRequest, ServiceUnavailable
from companies.actors import Actor

from . import stripe_objects
from .invoices import invoice_payment_failed_notify, invoice_refresh, invoice_retrieve
from .prices import price_product_refresh, price_refresh
from .purchases import purchase_sync_by_charge_id, purchase_sync_by_intent_id
from .subscriptions import (
    checkout_claim_apply,
    subscription_mark_ended,
    subscription_refresh,
    subscription_sync,
)
from .tiers import tier_resolve

logger = logging.getLogger("saasdesk.billing.webhooks")

WEBHOOK_ACTOR = Actor.system("billing.webhook")
# Stripe's own default tolerance: a signed payload older than this is refused
# (replay protection).
SIGNATURE_TOLERANCE_SECONDS = 300

# Final states: a repeat delivery or a reprocess request leaves them alone.
_DONE = (WebhookEventStatus.PROCESSED, WebhookEventStatus.IGNORED)

WebhookHandler = Callable[[dict], dict]
WEBHOOK_HANDLERS: dict[str, WebhookHandler] = {}


def webhook_handler(*event_types: str) -> Callable[[WebhookHandler], WebhookHandler]:
    """Register `fn(event: dict) -> dict` (a summary for staff) for event types."""

    def register(fn: WebhookHandler) -> WebhookHandler:
        for event_type in event_types:
            WEBHOOK_HANDLERS[event_type] = fn
        return fn

    return register


class WebhookProcessingFailed(ApplicationError):
    """The event is stored and marked failed; Stripe will redeliver it (we
    answer non-2xx) and staff can reprocess it from the admin."""

    default_message = "The event was stored but processing failed; it will be retried."
    reason = BillingErrorCode.WEBHOOK_PROCESSING_FAILED


# --- receiving ---------------------------------------------------------------------


def _signed_timestamp(signature: str) -> int | None:
    """The `t=` of a Stripe-Signature header (already verified), or None."""
    for part in signature.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def webhook_event_verify(*, payload: bytes, signature: str, now: float | None = None) -> dict:
    """The parsed event if `signature` (the Stripe-Signature header) is valid
    for `payload` under STRIPE_WEBHOOK_SECRET and was made within
    SIGNATURE_TOLERANCE_SECONDS of now — in either direction; 400 otherwise."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise ServiceUnavailable("Stripe webhooks are not configured (set STRIPE_WEBHOOK_SECRET).")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, signature or "", secret, SIGNATURE_TOLERANCE_SECONDS)
    except (UnicodeDecodeError, stripe.SignatureVerificationError) as error:
        raise BadRequest("Invalid Stripe signature.", reason=BillingErrorCode.WEBHOOK_SIGNATURE_INVALID) from error
    # The SDK only refuses timestamps too far in the past; one far in the
    # future (a captured payload signed with a skewed or forged clock) would
    # stay replayable for as long as it is "ahead", so the window is two-sided.
    signed_at = _signed_timestamp(signature)
    current = time.time() if now is None else now
    if signed_at is None or abs(current - signed_at) > SIGNATURE_TOLERANCE_SECONDS:
        raise BadRequest(
            "The Stripe signature timestamp is outside the tolerance window.",
            reason=BillingErrorCode.WEBHOOK_TIMESTAMP_OUTSIDE_TOLERANCE,
        )
    try:
        event = json_loads(text)
    except ValueError as error:
        raise BadRequest(f"The webhook body is not valid JSON: {error}",
                         reason=BillingErrorCode.WEBHOOK_PAYLOAD_INVALID) from None
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise BadRequest("The webhook body is not a Stripe event.", reason=BillingErrorCode.WEBHOOK_PAYLOAD_INVALID)
    return event


def webhook_event_store(*, event: dict) -> tuple[StripeWebhookEvent, bool]:
    """Store the raw event once by its Stripe id. Returns (row, created)."""
    defaults = {
        "type": str(event["type"])[:100],
        "livemode": bool(event.get("livemode")),
        "api_version": str(event.get("api_version") or "")[:64],
        "stripe_created_at": stripe_objects.timestamp(event.get("created")),
        "payload": event,
    }
    try:
        with transaction.atomic():
            return StripeWebhookEvent.objects.get_or_create(stripe_event_id=str(event["id"]), defaults=defaults)
    except IntegrityError:
        # A concurrent delivery of the same event stored it first.
        return StripeWebhookEvent.objects.get(stripe_event_id=str(event["id"])), False


def webhook_event_receive(*, payload: bytes, signature: str) -> StripeWebhookEvent:
    """Verify, store once, process. A repeat of an event already processed (or
    ignored) is a no-op; a repeat of a failed event processes it again (that is
    what Stripe's redelivery is for). Raises WebhookProcessingFailed when
    processing fails — the error is kept on the stored row."""
    event = webhook_event_verify(payload=payload, signature=signature)
    stored, created = webhook_event_store(event=event)
    if not created and stored.status in _DONE:
        return stored
    return webhook_event_process(webhook_event=stored, raise_on_failure=True)


# --- processing --------------------------------------------------------------------


def webhook_event_process(*, webhook_event: StripeWebhookEvent, raise_on_failure: bool = False) -> StripeWebhookEvent:
    """Process a stored event in its own transaction (the event row locked, so
    two deliveries of one event never process it twice). On failure the row is
    marked failed with the error; with `raise_on_failure` the error is re-raised
    as WebhookProcessingFailed / ServiceUnavailable."""
    handler = WEBHOOK_HANDLERS.get(webhook_event.type)
    try:
        with transaction.atomic():
            locked = StripeWebhookEvent.objects.select_for_update().get(pk=webhook_event.pk)
            if locked.status in _DONE:
                return locked
            locked.attempts += 1
            locked.processed_at = timezone.now()
            locked.processing_error = ""
            if handler is None:
                locked.status = WebhookEventStatus.IGNORED
                locked.result = {"action": "ignored", "reason": "event type not handled"}
            else:
                locked.result = handler(locked.payload) or {}
                locked.status = WebhookEventStatus.PROCESSED
            locked.save(update_fields=["attempts", "processed_at", "processing_error", "status", "result"])
            return locked
    except Exception as error:  # noqa: BLE001 - every failure is recorded on the event row
        message = _error_text(error)
        logger.warning(
            "stripe webhook processing failed",
            extra={"stripe_event_id": webhook_event.stripe_event_id, "type": webhook_event.type, "error": message},
        )
        StripeWebhookEvent.objects.filter(pk=webhook_event.pk).update(
            status=WebhookEventStatus.FAILED,
            processing_error=message,
            processed_at=None,
            attempts=webhook_event.attempts + 1,
        )
        webhook_event.refresh_from_db()
        if raise_on_failure:
            if isinstance(error, ServiceUnavailable):
                raise
            raise WebhookProcessingFailed(details={"stripeEventId": webhook_event.stripe_event_id}) from error
        return webhook_event


def webhook_events_reprocess(*, webhook_event_ids) -> dict[str, int]:
    """Process stored events again (admin action): failed ones, or pending ones
    whose first attempt never finished. Processed and ignored events are left alone."""
    counts = {"processed": 0, "failed": 0, "skipped": 0}
    for stored in StripeWebhookEvent.objects.filter(pk__in=list(webhook_event_ids)).order_by("received_at"):
        if stored.status in _DONE:
            counts["skipped"] += 1
            continue
        result = webhook_event_process(webhook_event=stored)
        counts["failed" if result.status == WebhookEventStatus.FAILED else "processed"] += 1
    return counts


def _error_text(error: Exception) -> str:
    if isinstance(error, stripe.StripeError):
        return describe(error)
    if isinstance(error, ApplicationError):
        cause = error.__cause__
        suffix = f" ({describe(cause)})" if isinstance(cause, stripe.StripeError) else ""
        return f"{error.code}: {error.message}{suffix}"[:2000]
    return f"{error.__class__.__name__}: {error}"[:2000]


# --- handlers ----------------------------------------------------------------------


def _data_object(event: dict) -> dict:
    return (event.get("data") or {}).get("object") or {}


def _retrieve(kind: str, object_id: str) -> Any | None:
    """The object's current state from Stripe, or None if Stripe no longer has it."""
    client = get_stripe_client()
    service = {"subscription": client.v1.subscriptions, "checkout_session": client.v1.checkout.sessions}[kind]
    return stripe_retrieve_or_none(service, object_id, operation=f"{kind}.retrieve")


def _account_for_customer(customer_id: str | None) -> tuple[Company, Any] | None:
    """(company, product_id) of the account billed to this Stripe customer."""
    if not customer_id:
        return None
    profile = BillingProfile.objects.select_related("company").filter(stripe_customer_id=customer_id).first()
    return (profile.company, profile.product_id) if profile else None


def _product_for_new_subscription(company: Company, stripe_subscription: Any, *, product_id) -> tuple[Any, Any] | None:
    """(product_id, tier) for a subscription we have not seen, of the product
    whose account the customer bills (billing is per product, SPEC §2): when
    the company is linked to it, the metadata's `product` (if any) names it,
    and the subscription's prices resolve to one of its tiers."""
    metadata = stripe_subscription.get("metadata") or {}
    links = ProductLink.objects.filter(company=company, product_id=product_id).select_related("product")
    product_ids = list(dict.fromkeys(link.product_id for link in links if not metadata.get("product")
                                     or link.product.code == metadata.get("product")))
    price_ids = stripe_objects.subscription_price_ids(stripe_subscription)
    for product_id in product_ids:
        tier = tier_resolve(product_id=product_id, price_ids=price_ids, metadata=metadata)
        if tier is not None:
            return product_id, tier
    return None


def _sync_subscription_by_id(stripe_subscription_id: str, *, reason: str) -> dict:
    local = Subscription.objects.select_related("company").filter(stripe_subscription_id=stripe_subscription_id).first()
    current = _retrieve("subscription", stripe_subscription_id)
    if current is None:
        if local is None:
            return {"action": "ignored", "reason": "subscription unknown here and at Stripe"}
        applied = subscription_mark_ended(subscription=local, actor=WEBHOOK_ACTOR, reason=reason)
        return {"action": "ended", "subscriptionId": str(local.pk), "featuresApplied": applied}
    if local is not None:
        result = subscription_refresh(subscription=local, stripe_subscription=current, actor=WEBHOOK_ACTOR, reason=reason)
        return {
            "action": "updated",
            "subscriptionId": str(result.subscription.pk),
            "status": result.subscription.status,
            "tierCode": result.tier_code,
            "featuresApplied": result.features_applied,
        }
    account = _account_for_customer(stripe_objects.object_id(current.get("customer")))
    if account is None:
        return {"action": "ignored", "reason": "no company is billed to this customer (claim or link it)"}
    company, billed_product_id = account
    found = _product_for_new_subscription(company, current, product_id=billed_product_id)
    if found is None:
        return {"action": "ignored", "reason": "no tier of the company's products matches the subscription's prices"}
    product_id, tier = found
    with transaction.atomic():
        Company.objects.select_for_update().filter(pk=company.pk).first()
        result = subscription_sync(
            company=company,
            product_id=product_id,
            stripe_subscription=current,
            tier=tier,
            actor=WEBHOOK_ACTOR,
            reason=reason,
        )
    return {
        "action": "created" if result.created else "updated",
        "subscriptionId": str(result.subscription.pk),
        "status": result.subscription.status,
        "tierCode": result.tier_code,
        "featuresApplied": result.features_applied,
    }


@webhook_handler(
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
)
def handle_subscription_event(event: dict) -> dict:
    subscription_id = _data_object(event).get("id")
    if not subscription_id:
        raise BadRequest("The event has no subscription id.")
    return _sync_subscription_by_id(subscription_id, reason=f"Stripe {event['type']}")


@webhook_handler(
    "invoice.created", "invoice.finalized", "invoice.updated", "invoice.paid", "invoice.payment_failed",
    "invoice.voided", "invoice.marked_uncollectible",
)
def handle_invoice_event(event: dict) -> dict:
    """Mirror the invoice (re-read from Stripe; SPEC §8), grant a paid cycle's
    credits (§7), notify a failed payment (§11), and re-sync the subscription
    a payment changed."""
    invoice_id = _data_object(event).get("id")
    if not invoice_id:
        raise BadRequest("The event has no invoice id.")
    stripe_invoice = invoice_retrieve(invoice_id)
    if stripe_invoice is None:
        return {"action": "ignored", "reason": "invoice unknown at Stripe"}
    mirrored = invoice_refresh(stripe_invoice=stripe_invoice)
    summary: dict = {"action": "ignored", "reason": mirrored.note} if mirrored.invoice is None else {
        "action": "mirrored", "invoiceId": str(mirrored.invoice.pk), "status": mirrored.invoice.status,
        "creditsGranted": mirrored.credits_granted, "note": mirrored.note,
    }
    if mirrored.invoice is not None and event["type"] == "invoice.payment_failed":
        invoice_payment_failed_notify(mirrored.invoice, stripe_invoice)
    subscription_id = stripe_objects.invoice_subscription_id(stripe_invoice)
    if event["type"] in ("invoice.paid", "invoice.payment_failed") and subscription_id and \
            Subscription.objects.filter(stripe_subscription_id=subscription_id).exists():
        summary["subscription"] = _sync_subscription_by_id(subscription_id, reason=f"Stripe {event['type']}")
    summary["stripeInvoiceId"] = invoice_id
    return summary


@webhook_handler("checkout.session.completed")
def handle_checkout_completed(event: dict) -> dict:
    session_id = _data_object(event).get("id")
    session = _retrieve("checkout_session", session_id) if session_id else None
    if session is None:
        return {"action": "ignored", "reason": "checkout session unknown at Stripe"}
    subscription_id = stripe_objects.object_id(session.get("subscription"))
    if session.get("status") != "complete" or not subscription_id:
        return {"action": "ignored", "reason": "not a completed subscription checkout"}
    claimed = Subscription.objects.filter(checkout_session_id=session_id).first()
    if claimed is not None:
        return _sync_subscription_by_id(subscription_id, reason="Stripe checkout.session.completed")
    target = _checkout_target(session)
    if target is None:
        # Waiting for the product to claim it (POST /billing/claim-checkout or /onboard).
        return {"action": "unclaimed", "checkoutSessionId": session_id}
    company, product_id = target
    stripe_subscription = _retrieve("subscription", subscription_id)
    if stripe_subscription is None:
        return {"action": "ignored", "reason": "subscription unknown at Stripe"}
    result = checkout_claim_apply(
        company=company, product_id=product_id, session=session, stripe_subscription=stripe_subscription, actor=WEBHOOK_ACTOR
    )
    return {
        "action": "already_claimed" if result.already_claimed else "claimed",
        "subscriptionId": str(result.subscription.pk),
        "tierCode": result.tier_code,
        "featuresApplied": result.features_applied,
    }


@webhook_handler("price.created", "price.updated", "price.deleted")
def handle_price_event(event: dict) -> dict:
    price_id = _data_object(event).get("id")
    if not price_id:
        raise BadRequest("The event has no price id.")
    result = price_refresh(stripe_price_id=price_id)
    if result is None:
        return {"action": "ignored", "reason": "price unknown at Stripe"}
    return {
        "action": "created" if result.created else "updated" if result.changed else "unchanged",
        "priceId": str(result.price.pk),
        "stripePriceId": price_id,
        "active": result.price.active,
    }


@webhook_handler("product.updated")
def handle_product_event(event: dict) -> dict:
    product_id = _data_object(event).get("id")
    if not product_id:
        raise BadRequest("The event has no product id.")
    return {"action": "updated", "stripeProductId": product_id,
            "pricesRenamed": price_product_refresh(stripe_product_id=product_id)}


def _checkout_target(session: Any) -> tuple[Company, Any] | None:
    """The (company, product) a checkout session was started for, when the
    product said so: `client_reference_id` (or metadata `company_id`) is our
    company id, and metadata `product` names the product (or the company is
    linked to exactly one product)."""
    metadata = session.get("metadata") or {}
    company_id = session.get("client_reference_id") or metadata.get("company_id") or metadata.get("companyId")
    if not company_id:
        return None
    try:
        company = Company.objects.filter(pk=uuid.UUID(str(company_id))).first()
    except ValueError:  # not one of our ids
        return None
    if company is None:
        return None
    links = ProductLink.objects.filter(company=company).select_related("product")
    if metadata.get("product"):
        links = [link for link in links if link.product.code == metadata["product"]]
    product_ids = {link.product_id for link in links}
    if len(product_ids) != 1:
        return None
    return company, product_ids.pop()


# --- credit purchases (SPEC §7) ------------------------------------------------------


def _purchase_summary(purchase) -> dict:
    if purchase is None:
        return {"action": "ignored", "reason": "not a SaaSDesk credit purchase"}
    return {"action": "synced", "purchaseId": str(purchase.pk), "status": purchase.status,
            "amountRefunded": purchase.amount_refunded, "creditsReversed": purchase.credits_reversed,
            "disputed": purchase.disputed}


@webhook_handler("payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled")
def handle_payment_intent_event(event: dict) -> dict:
    intent_id = _data_object(event).get("id")
    if not intent_id:
        raise BadRequest("The event has no PaymentIntent id.")
    return _purchase_summary(purchase_sync_by_intent_id(intent_id))


@webhook_handler("charge.refunded", "charge.dispute.created", "charge.dispute.closed")
def handle_charge_event(event: dict) -> dict:
    obj = _data_object(event)
    charge_id = stripe_objects.object_id(obj.get("charge")) if obj.get("object") == "dispute" else obj.get("id")
    if not charge_id:
        raise BadRequest("The event has no charge id.")
    return _purchase_summary(purchase_sync_by_charge_id(charge_id))
