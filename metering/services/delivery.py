"""The Stripe delivery state of usage events (SPEC §6 "Usage → Stripe
meters"). Metering owns these columns and these services are their only
writers: billing's delivery pass claims pending events and records each
outcome through them (billing knows Stripe customers and talks to Stripe;
metering knows what an event is worth and whether it goes to Stripe).

Every transition here is a conditional UPDATE of delivery columns only —
the rest of a usage event is append-only (`UsageEvent.save`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import Exists, F, OuterRef, QuerySet

from entitlements.models import Feature

from ..models import StripeDeliveryStatus, UsageEvent
from ..rules import goes_to_stripe


@dataclass(frozen=True)
class ClaimedUsageEvent:
    """A pending event locked for delivery by `usage_deliveries_claim`."""

    id: UUID
    billable_delta: int
    event_time: datetime
    stripe_event_identifier: str
    stripe_delivery_attempts: int
    feature_id: UUID
    company_id: UUID
    created_at: datetime
    meter_event_name: str = ""


@dataclass(frozen=True)
class UsageDeliveryClaim:
    events: list[ClaimedUsageEvent]  # to send
    locked: int  # rows claimed, including those found to have nothing to bill
    fresh_after: datetime | None


_CLAIM_COLUMNS = (
    "id",
    "billable_delta",
    "event_time",
    "stripe_event_identifier",
    "stripe_delivery_attempts",
    "feature_id",
    "company_id",
    "created_at",
)


def _pending_deliverable(company_ids: QuerySet | Iterable[Any], accounts: QuerySet | None = None) -> QuerySet[UsageEvent]:
    """Pending events of features with a Stripe meter, of the given companies
    (and, with `accounts`, only of the company × product pairs it has rows
    for). Written as subqueries rather than joins so that PostgreSQL walks the
    partial queue index in order and stops at the LIMIT (a join plan sorts
    the whole backlog on every claim)."""
    events = UsageEvent.objects.filter(
        stripe_delivery_status=StripeDeliveryStatus.PENDING,
        company_id__in=company_ids,
        feature_id__in=Feature.objects.exclude(stripe_meter_event_name="").values("id"),
    )
    if accounts is not None:
        events = events.filter(
            Exists(accounts.filter(company_id=OuterRef("company_id"), product_id=OuterRef("product_id")))
        )
    return events


def usage_deliveries_claim(
    *,
    company_ids: QuerySet | Iterable[Any],
    accounts: QuerySet | None = None,
    now: datetime,
    batch_size: int,
    fresh_after: datetime | None = None,
    include_due: bool = True,
    meter_event_names: dict | None = None,
) -> UsageDeliveryClaim:
    """Lock up to `batch_size` pending events of `company_ids` (the companies
    that can be billed; the caller decides; `accounts`, a queryset with
    `company_id` and `product_id`, narrows that to the billable company ×
    product pairs) with `FOR UPDATE SKIP LOCKED`,
    inside the caller's transaction: retries whose backoff has passed first
    (when `include_due`), then never-tried events, in the order of the queue
    index (stripe_next_attempt_at, created_at). The row locks are the claim.

    Claimed events that no longer go to Stripe (`rules.goes_to_stripe`: no
    billable change) are marked not applicable here and not returned.

    `fresh_after` (the newest created_at a pass has claimed) lets later
    claims of one pass start the index scan there instead of wading through
    entries of rows delivered moments ago, which stay in the partial index
    until vacuum; the claim returns the new one. `meter_event_names` (feature id → name) is the caller's
    cache across the claims of one pass; names it lacks are read and added
    (reading them here rather than joining keeps the claim's plan on the
    queue index)."""
    base = _pending_deliverable(company_ids, accounts).order_by("stripe_next_attempt_at", "created_at")
    with _queue_order():
        rows, fresh_after = _claim_rows(
            base, now=now, batch_size=batch_size, fresh_after=fresh_after, include_due=include_due
        )
    names = meter_event_names if meter_event_names is not None else {}
    missing = {row[5] for row in rows} - names.keys()
    if missing:
        names.update(Feature.objects.filter(pk__in=missing).values_list("pk", "stripe_meter_event_name"))
    claimed, nothing_to_bill = [], []
    for row in rows:
        event = ClaimedUsageEvent(*row, meter_event_name=names.get(row[5], ""))
        if goes_to_stripe(stripe_meter_event_name=event.meter_event_name, billable_delta=event.billable_delta):
            claimed.append(event)
        else:
            nothing_to_bill.append(event.id)
    if nothing_to_bill:
        _by_ids(nothing_to_bill, [row[2] for row in rows]).update(
            stripe_delivery_status=StripeDeliveryStatus.NOT_APPLICABLE, stripe_next_attempt_at=None
        )
    return UsageDeliveryClaim(events=claimed, locked=len(rows), fresh_after=fresh_after)


def _claim_rows(
    base: QuerySet[UsageEvent], *, now: datetime, batch_size: int, fresh_after: datetime | None, include_due: bool
) -> tuple[list[tuple], datetime | None]:
    rows: list[tuple] = []
    if include_due:
        rows = list(
            base.filter(stripe_next_attempt_at__lte=now)
            .select_for_update(skip_locked=True)
            .values_list(*_CLAIM_COLUMNS)[:batch_size]
        )
    if len(rows) < batch_size:
        fresh = base.filter(stripe_next_attempt_at__isnull=True)
        if fresh_after is not None:
            fresh = fresh.filter(created_at__gte=fresh_after)
        fresh_rows = list(
            fresh.select_for_update(skip_locked=True).values_list(*_CLAIM_COLUMNS)[: batch_size - len(rows)]
        )
        if fresh_rows:
            fresh_after = fresh_rows[-1][-1]  # ordered by created_at
        rows += fresh_rows
    return rows, fresh_after


@contextmanager
def _queue_order() -> Iterator[None]:
    """Plan the claims as walks of the queue index in order, stopping at the
    LIMIT. PostgreSQL cannot estimate how many pending events pass the
    billable filters (subqueries on other apps' tables), guesses "few", and
    on the partitioned table prefers reading and sorting the whole backlog
    of every partition (~250 ms per claim at 5,000 pending events instead of
    ~2 ms for a Merge Append of the partitions' queue indexes; bench/README.md
    "2026-11-29 (perftrack)"). Sorting is switched off for the claim
    statements only (transaction-local, switched back on after them)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('enable_sort', 'off', true)")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('enable_sort', 'on', true)")


def _by_ids(event_ids: Iterable[Any], event_times: Iterable[datetime] | None) -> QuerySet[UsageEvent]:
    """The events with these ids. The table is range-partitioned by
    `event_time` (docs/scaling.md) and its primary key is (id, event_time):
    by id alone, an UPDATE opens every partition and probes each one's index.
    With the claimed events' times (`ClaimedUsageEvent.event_time`, which
    never changes), PostgreSQL prunes to the partitions between the oldest
    and newest of them at plan time."""
    events = UsageEvent.objects.filter(pk__in=event_ids)
    times = list(event_times or ())
    if times:
        events = events.filter(event_time__gte=min(times), event_time__lte=max(times))
    return events


def usage_deliveries_delivered(*, event_ids: list, at: datetime, event_times: Iterable[datetime] | None = None) -> int:
    """Stripe accepted these events: delivered, one more attempt counted.
    `event_times` (the events' own times, from the claim) lets PostgreSQL
    update only the partitions they live in (`_by_ids`); every outcome below
    takes it too."""
    return _by_ids(event_ids, event_times).update(
        stripe_delivery_status=StripeDeliveryStatus.DELIVERED,
        delivered_at=at,
        stripe_delivery_error="",
        stripe_delivery_attempts=F("stripe_delivery_attempts") + 1,
        stripe_next_attempt_at=None,
    )


def usage_deliveries_failed(
    *,
    event_ids: list,
    error: str,
    attempts: int | None = None,
    attempted: bool = True,
    event_times: Iterable[datetime] | None = None,
) -> int:
    """These events will not be sent again without staff (`usage_delivery_retry`):
    `failed` with the reason. `attempts` sets the attempt count; otherwise
    one more attempt is counted when `attempted` (nothing was sent for an
    event refused before sending, e.g. older than Stripe's window)."""
    changes: dict[str, Any] = {
        "stripe_delivery_status": StripeDeliveryStatus.FAILED,
        "stripe_delivery_error": error,
        "stripe_next_attempt_at": None,
    }
    if attempts is not None:
        changes["stripe_delivery_attempts"] = attempts
    elif attempted:
        changes["stripe_delivery_attempts"] = F("stripe_delivery_attempts") + 1
    return _by_ids(event_ids, event_times).update(**changes)


def usage_deliveries_retry_later(
    *,
    event_ids: list,
    attempts: int,
    error: str,
    next_attempt_at: datetime,
    event_times: Iterable[datetime] | None = None,
) -> int:
    """A transient failure: stay pending, try again at `next_attempt_at`."""
    return _by_ids(event_ids, event_times).update(
        stripe_delivery_error=error, stripe_delivery_attempts=attempts, stripe_next_attempt_at=next_attempt_at
    )


def usage_delivery_retry(*, event_ids: Iterable[Any]) -> int:
    """Put failed (or waiting) events back in the queue for an immediate
    attempt (the admin's action). Delivered and not-applicable events are
    left alone. Returns how many were re-queued."""
    return UsageEvent.objects.filter(
        pk__in=list(event_ids),
        stripe_delivery_status__in=[StripeDeliveryStatus.FAILED, StripeDeliveryStatus.PENDING],
    ).update(
        stripe_delivery_status=StripeDeliveryStatus.PENDING,
        stripe_delivery_attempts=0,
        stripe_next_attempt_at=None,
        stripe_delivery_error="",
    )
