"""Celery tasks of notifications: thin wrappers around the delivery service.
All are idempotent: a delivery is claimed with a lease, so a task run twice
(acks_late redelivery, beat and a countdown task at once) sends nothing twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from .services.delivery import deliveries_run
from .services.events import events_prune

_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 5,
}
# The beat pass stops claiming new batches after this long, so that passes
# (every 10 s) do not pile up behind a slow receiver.
PASS_TIME_BUDGET_SECONDS = 50.0


@shared_task(name="notifications.deliver_event", acks_late=True, ignore_result=True, **_RETRY)
def deliver_event(event_id: str) -> dict:
    """Deliver a just-committed event to its endpoints (enqueued on commit)."""
    return deliveries_run(event_id=event_id).as_dict()


@shared_task(name="notifications.deliver_one", acks_late=True, ignore_result=True, **_RETRY)
def deliver_one(delivery_id: str) -> dict:
    """Retry one delivery when it is due (enqueued with a countdown)."""
    return deliveries_run(delivery_id=delivery_id).as_dict()


@shared_task(name="notifications.deliver_due", acks_late=True, ignore_result=True, **_RETRY)
def deliver_due() -> dict:
    """The periodic pass (beat): every due delivery, including those whose
    task never reached the broker and retries scheduled hours ahead."""
    return deliveries_run(time_budget_seconds=PASS_TIME_BUDGET_SECONDS).as_dict()


@shared_task(name="notifications.prune_events", acks_late=True, ignore_result=True, **_RETRY)
def prune_events() -> dict:
    """Drop events (and their deliveries) past the retention. Idempotent."""
    return {"deleted": events_prune()}
