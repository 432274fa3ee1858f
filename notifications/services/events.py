"""The outbox: `event_emit` is how every app tells the products that
something changed (SPEC §11).

Contract: the event row — and one delivery row per enabled endpoint of the
product that wants its type — is written in the caller's transaction, so an
event exists if and only if the change that caused it committed. Delivery is
enqueued only after the commit (`transaction.on_commit`); if the broker is
down the rows simply wait for the periodic pass (`notifications.deliver_due`).

Fan-out happens here, at emit time: an endpoint receives the events emitted
while it was enabled and subscribed (as with Stripe), not older ones."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from companies.models import Product
from config.tasks import enqueue

from ..models import Delivery, DeliveryAttempt, Event, EventType, WebhookEndpoint
from .delivery import retry_window

logger = logging.getLogger("saasdesk.notifications")


def event_emit(*, product: Product | UUID | str, type: str, data: dict[str, Any], now: datetime | None = None) -> Event:
    """Record one event of `type` (an EventType value) for `product` (a
    Product or its id) in the caller's transaction and fan it out to the
    product's matching endpoints. `data` must be JSON-serialisable (datetimes,
    UUIDs and Decimals are accepted). Raises ValueError for an unknown type: a
    programming error, not user input."""
    if type not in EventType.values:
        raise ValueError(f"Unknown event type {type!r}; add it to notifications.models.EventType.")
    product_id = product.pk if isinstance(product, Product) else product
    now = now or timezone.now()
    # No savepoint: inside the caller's transaction this adds two INSERTs at
    # most; outside any transaction it makes the event and its deliveries atomic.
    with transaction.atomic(savepoint=False):
        event = Event.objects.create(product_id=product_id, type=type, data=data, created_at=now)
        endpoint_ids = [
            endpoint.pk
            for endpoint in WebhookEndpoint.objects.filter(product_id=product_id, enabled=True).only("id", "event_types")
            if endpoint.wants(type)
        ]
        if endpoint_ids:
            retry_until = now + retry_window()
            Delivery.objects.bulk_create(
                [
                    Delivery(event=event, endpoint_id=endpoint_id, next_attempt_at=now, retry_until=retry_until, created_at=now)
                    for endpoint_id in endpoint_ids
                ]
            )
            event_id = event.pk
            transaction.on_commit(lambda: enqueue_event_delivery(event_id))
    return event


def enqueue_event_delivery(event_id: UUID) -> None:
    """Ask a worker to deliver the event now. Never raises: with the broker
    down the deliveries wait in the database for the beat pass."""
    from ..tasks import deliver_event

    enqueue(deliver_event, str(event_id))


def events_prune(*, older_than: timedelta | None = None, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Delete events older than the retention (NOTIFICATIONS_EVENT_RETENTION_DAYS,
    default 90) with their deliveries and attempts, a batch per transaction so
    that no lock is held long. Returns the number of events deleted. The feed
    then starts at the oldest event kept (an `after` naming a pruned event is
    a 404)."""
    now = now or timezone.now()
    if older_than is None:
        older_than = timedelta(days=int(getattr(settings, "NOTIFICATIONS_EVENT_RETENTION_DAYS", 90)))
    cutoff = now - older_than
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(Event.objects.filter(created_at__lt=cutoff).order_by("created_at").values_list("pk", flat=True)[:batch_size])
            if not ids:
                return deleted
            DeliveryAttempt.objects.filter(delivery__event_id__in=ids).delete()
            Delivery.objects.filter(event_id__in=ids).delete()
            Event.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
