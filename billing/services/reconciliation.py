"""Compare what SaaSDesk delivered to Stripe meters with what Stripe reports
(v1 meter event summaries) and record drift for staff."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import stripe
from django.db.models import OuterRef, Subquery, Sum
from django.utils import timezone

from billing.models import BillingProfile, MeterDrift
from billing.stripe_client import describe, get_stripe_client, stripe_is_configured
from metering.models import StripeDeliveryStatus, UsageEvent

logger = logging.getLogger("saasdesk.billing.reconciliation")


@dataclass
class ReconciliationResult:
    window_start: datetime
    window_end: datetime
    checked: int = 0
    drifting: int = 0
    resolved: int = 0
    errors: int = 0
    configured: bool = True


def default_window(*, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Yesterday, UTC: Stripe aggregates meter events asynchronously, so the
    day just ended (not the current one) is compared."""
    now = now or timezone.now()
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return today - timedelta(days=1), today


def meters_reconcile(*, window_start: datetime | None = None, window_end: datetime | None = None) -> ReconciliationResult:
    """For each (Stripe customer, meter event name) with usage delivered in
    [window_start, window_end) by event time, compare our delivered sum with
    Stripe's summary; create/update a MeterDrift row when they differ and mark
    earlier drift resolved when they agree again. Idempotent per window."""
    if window_start is None or window_end is None:
        window_start, window_end = default_window()
    result = ReconciliationResult(window_start=window_start, window_end=window_end)
    if not stripe_is_configured():
        result.configured = False
        return result
    client = get_stripe_client()
    # The customer of an event is its account's (company × the event's product).
    customer_of_account = BillingProfile.objects.filter(
        company_id=OuterRef("company_id"), product_id=OuterRef("product_id")
    ).values("stripe_customer_id")[:1]
    delivered = (
        UsageEvent.objects.filter(
            stripe_delivery_status=StripeDeliveryStatus.DELIVERED,
            event_time__gte=window_start,
            event_time__lt=window_end,
        )
        .annotate(stripe_customer_id=Subquery(customer_of_account))
        .filter(stripe_customer_id__isnull=False)
        .values("company_id", "stripe_customer_id", "feature__stripe_meter_event_name")
        .annotate(total=Sum("billable_delta"))
    )
    pairs: dict[tuple[str, str], dict] = {}
    for row in delivered:
        key = (row["stripe_customer_id"], row["feature__stripe_meter_event_name"])
        pairs[key] = {"company_id": row["company_id"], "total": int(row["total"] or 0)}
    # Earlier drift in this window is re-checked even if nothing is delivered now.
    for drift in MeterDrift.objects.filter(window_start=window_start, window_end=window_end, resolved_at__isnull=True):
        pairs.setdefault((drift.stripe_customer_id, drift.meter_event_name), {"company_id": drift.company_id, "total": 0})
    if not pairs:
        return result
    try:
        meters = {meter.event_name: meter.id for meter in client.v1.billing.meters.list({"limit": 100}).auto_paging_iter()
                  if getattr(meter, "status", "active") == "active"}
    except stripe.StripeError as error:
        logger.warning("could not list stripe meters", extra={"error": describe(error)})
        result.errors += 1
        return result
    now = timezone.now()
    for (customer_id, event_name), info in sorted(pairs.items()):
        result.checked += 1
        meter_id = meters.get(event_name)
        stripe_value: int | None = None
        note = ""
        if meter_id is None:
            note = "No active Stripe meter has this event name."
        else:
            try:
                summaries = client.v1.billing.meters.event_summaries.list(
                    meter_id,
                    {
                        "customer": customer_id,
                        "start_time": int(window_start.timestamp()),
                        "end_time": int(window_end.timestamp()),
                        "limit": 100,
                    },
                )
                stripe_value = int(sum(summary.aggregated_value for summary in summaries.auto_paging_iter()))
            except stripe.StripeError as error:
                logger.warning("could not read stripe meter summary", extra={"error": describe(error)})
                result.errors += 1
                continue
        difference = info["total"] - (stripe_value or 0)
        existing = MeterDrift.objects.filter(
            stripe_customer_id=customer_id, meter_event_name=event_name, window_start=window_start, window_end=window_end
        ).first()
        if difference == 0 and meter_id is not None:
            if existing is not None and existing.resolved_at is None:
                existing.delivered_value, existing.stripe_value, existing.difference = info["total"], stripe_value, 0
                existing.checked_at = existing.resolved_at = now
                existing.save()
                result.resolved += 1
            continue
        result.drifting += 1
        company_id = info["company_id"] or BillingProfile.objects.filter(stripe_customer_id=customer_id).values_list(
            "company_id", flat=True
        ).first()
        MeterDrift.objects.update_or_create(
            stripe_customer_id=customer_id,
            meter_event_name=event_name,
            window_start=window_start,
            window_end=window_end,
            defaults={
                "company_id": company_id,
                "stripe_meter_id": meter_id or "",
                "delivered_value": info["total"],
                "stripe_value": stripe_value,
                "difference": difference,
                "note": note,
                "checked_at": now,
                "resolved_at": None,
            },
        )
    return result
