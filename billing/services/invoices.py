"""Invoices mirrored from Stripe (SPEC §8) and the subscription credits a
paid cycle invoice grants (SPEC §7).

`invoice_refresh` is the one writer of `Invoice`: the invoice webhooks and
`manage.py sync_invoices` both call it with the invoice as Stripe has it now
(never an event's copy), so events in any order or twice end in the same row.
A paid invoice whose billing reason is a cycle (`subscription_cycle`,
`subscription_create`) grants its tier's `creditsPerCycle` once per invoice
(the credits service keys the lot on the invoice id)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Min, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import BillingProfile, Invoice, Subscription
from billing.stripe_client import get_stripe_client, stripe_retrieve_or_none, stripe_errors_as_unavailable
from companies.services import account_purchases_set
from credits.services import credits_cycle_grant
from notifications.services import event_emit

from . import stripe_objects
from .tiers import tier_resolve

CYCLE_REASONS = ("subscription_cycle", "subscription_create")


@dataclass(frozen=True)
class InvoiceRefreshResult:
    invoice: Invoice | None
    created: bool = False
    credits_granted: int = 0
    note: str = ""


def _line_row(line: Any) -> dict:
    pricing = line.get("pricing") or {}
    price_id = stripe_objects.object_id((pricing.get("price_details") or {}).get("price")) or stripe_objects.object_id(
        line.get("price")
    )
    details = (line.get("parent") or {}).get("subscription_item_details") or {}
    period = line.get("period") or {}
    quantity = line.get("quantity")
    amount = int(line.get("amount") or 0)
    unit = pricing.get("unit_amount_decimal")
    if unit is None and quantity:
        unit = amount / quantity if amount % quantity else amount // quantity
    return {
        "description": line.get("description") or "",
        "quantity": quantity,
        "unitAmount": float(unit) if isinstance(unit, str) else unit,
        "amount": amount,
        "priceId": price_id,
        "periodStart": _iso(stripe_objects.timestamp(period.get("start"))),
        "periodEnd": _iso(stripe_objects.timestamp(period.get("end"))),
        "proration": bool(details.get("proration") or line.get("proration")),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _lines(stripe_invoice: Any) -> list[dict]:
    lines = stripe_invoice.get("lines") or {}
    data = list(lines.get("data") or [])
    if lines.get("has_more"):
        client = get_stripe_client()
        with stripe_errors_as_unavailable("invoice.lines.list"):
            data = list(client.v1.invoices.line_items.list(stripe_invoice["id"], {"limit": 100}).auto_paging_iter())
    return [_line_row(line) for line in data]


def _tax(stripe_invoice: Any) -> int:
    if stripe_invoice.get("tax") is not None:
        return int(stripe_invoice["tax"])
    return sum(int(item.get("amount") or 0) for item in stripe_invoice.get("total_taxes") or [])


def invoice_retrieve(stripe_invoice_id: str) -> Any | None:
    """The invoice's current state from Stripe, or None if Stripe no longer has it."""
    return stripe_retrieve_or_none(get_stripe_client().v1.invoices, stripe_invoice_id, operation="invoice.retrieve")


def invoice_refresh(*, stripe_invoice_id: str | None = None, stripe_invoice: Any | None = None,
                    actor: str = "system:billing.webhook") -> InvoiceRefreshResult:
    """Mirror one invoice (read from Stripe unless given) and grant its cycle's
    credits when it is a paid cycle invoice. Invoices of customers no company
    is billed to are not mirrored (`invoice` None)."""
    if stripe_invoice is None:
        stripe_invoice = invoice_retrieve(stripe_invoice_id)
        if stripe_invoice is None:
            return InvoiceRefreshResult(invoice=None, note="invoice unknown at Stripe")
    customer_id = stripe_objects.object_id(stripe_invoice.get("customer"))
    profile = BillingProfile.objects.filter(stripe_customer_id=customer_id).first() if customer_id else None
    if profile is None:
        return InvoiceRefreshResult(invoice=None, note="no company is billed to this customer")
    subscription_id = stripe_objects.invoice_subscription_id(stripe_invoice) or ""
    subscription = Subscription.objects.select_related("tier").filter(stripe_subscription_id=subscription_id).first() \
        if subscription_id else None
    transitions = stripe_invoice.get("status_transitions") or {}
    values = {
        "company_id": profile.company_id,
        "product_id": profile.product_id,
        "subscription": subscription,
        "stripe_customer_id": customer_id,
        "stripe_subscription_id": subscription_id,
        "number": stripe_invoice.get("number") or "",
        "status": stripe_invoice.get("status") or "",
        "billing_reason": stripe_invoice.get("billing_reason") or "",
        "currency": (stripe_invoice.get("currency") or "").lower(),
        "subtotal": int(stripe_invoice.get("subtotal") or 0),
        "tax": _tax(stripe_invoice),
        "total": int(stripe_invoice.get("total") or 0),
        "amount_paid": int(stripe_invoice.get("amount_paid") or 0),
        "amount_due": int(stripe_invoice.get("amount_due") or 0),
        "period_start": stripe_objects.timestamp(stripe_invoice.get("period_start")),
        "period_end": stripe_objects.timestamp(stripe_invoice.get("period_end")),
        "hosted_invoice_url": stripe_invoice.get("hosted_invoice_url") or "",
        "invoice_pdf": stripe_invoice.get("invoice_pdf") or "",
        "lines": _lines(stripe_invoice),
        "paid_at": stripe_objects.timestamp(transitions.get("paid_at")),
        "stripe_created_at": stripe_objects.timestamp(stripe_invoice.get("created")) or timezone.now(),
        "synced_at": timezone.now(),
    }
    try:
        with transaction.atomic():
            invoice, created = Invoice.objects.select_for_update().update_or_create(
                stripe_invoice_id=stripe_invoice["id"], defaults=values
            )
    except IntegrityError:  # a concurrent first sight made it
        with transaction.atomic():
            invoice, created = Invoice.objects.select_for_update().update_or_create(
                stripe_invoice_id=stripe_invoice["id"], defaults=values
            )
    account_purchases_refresh(company_id=invoice.company_id, product_id=invoice.product_id)
    granted, note = 0, ""
    if invoice.status == "paid" and invoice.billing_reason in CYCLE_REASONS:
        granted, note = _cycle_credits(invoice, subscription=subscription, actor=actor)
    return InvoiceRefreshResult(invoice=invoice, created=created, credits_granted=granted, note=note)


def account_purchases_refresh(*, company_id, product_id) -> None:
    """The account's derived lifetimeValue (sum of paid invoices' amountPaid)
    and firstPurchaseAt (the first paid invoice's paid time), recomputed from
    the mirror and written whole (companies.services.account_purchases_set),
    so webhook replays and sync_invoices never count twice."""
    totals = Invoice.objects.filter(company_id=company_id, product_id=product_id, status="paid").aggregate(
        paid=Sum("amount_paid"), first=Min(Coalesce("paid_at", "stripe_created_at"))
    )
    account_purchases_set(
        company_id=company_id, product_id=product_id, lifetime_value=totals["paid"] or 0, first_purchase_at=totals["first"]
    )


def _cycle_period(invoice: Invoice) -> tuple[datetime | None, datetime | None]:
    """The cycle a paid invoice pays for: its (non-proration) lines' latest
    period — a cycle invoice bills the licensed items for the period ahead."""
    periods = [(line["periodStart"], line["periodEnd"]) for line in invoice.lines
               if line.get("periodEnd") and not line.get("proration")]
    if not periods:
        return invoice.period_start, invoice.period_end
    start, end = max(periods, key=lambda period: period[1])
    return datetime.fromisoformat(start) if start else None, datetime.fromisoformat(end)


def _cycle_credits(invoice: Invoice, *, subscription: Subscription | None, actor: str) -> tuple[int, str]:
    tier = subscription.tier if subscription is not None else None
    if tier is None:
        tier = tier_resolve(product_id=invoice.product_id,
                            price_ids=[line["priceId"] for line in invoice.lines if line.get("priceId")])
    if tier is None or not tier.credits_per_cycle:
        return 0, "no creditsPerCycle for this invoice's tier"
    period_start, period_end = _cycle_period(invoice)
    if period_end is None or period_end <= timezone.now():
        return 0, "the cycle had ended before the invoice was paid: no credits"
    result = credits_cycle_grant(
        company_id=invoice.company_id, product_id=invoice.product_id, amount=tier.credits_per_cycle,
        stripe_invoice_id=invoice.stripe_invoice_id, expires_at=period_end, tier_code=tier.code,
        period_start=period_start, actor=actor,
    )
    return (tier.credits_per_cycle if result.created else 0), ("granted" if result.created else "already granted")


def invoice_payment_failed_notify(invoice: Invoice, stripe_invoice: Any) -> None:
    """SPEC §11 `invoice.payment_failed` (once per Stripe event: the webhook
    stores each event once and processes it in one transaction)."""
    event_emit(product=invoice.product_id, type="invoice.payment_failed", data={
        "companyId": str(invoice.company_id), "invoiceId": str(invoice.pk), "stripeInvoiceId": invoice.stripe_invoice_id,
        "number": invoice.number, "amountDue": invoice.amount_due, "currency": invoice.currency,
        "attemptCount": stripe_invoice.get("attempt_count"),
        "nextPaymentAttempt": stripe_objects.timestamp(stripe_invoice.get("next_payment_attempt")),
        "hostedInvoiceUrl": invoice.hosted_invoice_url,
    })


def invoices_sync(*, product_id=None, company_id=None) -> dict[str, int]:
    """`manage.py sync_invoices`: mirror every invoice of every billed customer
    (optionally of one product / company) from Stripe, granting cycle credits
    that a missed webhook never granted."""
    profiles = BillingProfile.objects.all()
    if product_id is not None:
        profiles = profiles.filter(product_id=product_id)
    if company_id is not None:
        profiles = profiles.filter(company_id=company_id)
    client = get_stripe_client()
    counts = {"customers": 0, "invoices": 0, "created": 0, "creditsGranted": 0}
    for profile in profiles.order_by("pk"):
        counts["customers"] += 1
        with stripe_errors_as_unavailable("invoice.list"):
            invoices = list(client.v1.invoices.list({"customer": profile.stripe_customer_id, "limit": 100}).auto_paging_iter())
        for stripe_invoice in invoices:
            result = invoice_refresh(stripe_invoice=stripe_invoice, actor="system:billing.sync_invoices")
            counts["invoices"] += 1
            counts["created"] += int(result.created)
            counts["creditsGranted"] += result.credits_granted
    return counts
