"""Celery tasks of billing: thin wrappers around services. Each is idempotent,
so a task redelivered after a worker died (acks_late) does no harm."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from .services.delivery import deliver_pending_usage
from .services.reconciliation import meters_reconcile


# A database outage is worth a few quick retries; beat runs the task again anyway.
_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 5,
}


@shared_task(name="billing.deliver_usage", acks_late=True, ignore_result=True, **_RETRY)
def deliver_usage(batch_size: int = 100, max_batches: int | None = None) -> dict:
    """One delivery pass (scheduled by beat). Per-event backoff lives in the
    service, so a failing Stripe never makes the task itself retry-storm."""
    return deliver_pending_usage(batch_size=batch_size, max_batches=max_batches, worker="celery").as_dict()


@shared_task(name="billing.reconcile_meters", acks_late=True, ignore_result=True, **_RETRY)
def reconcile_meters() -> dict:
    """Compare yesterday's delivered usage with Stripe's meter summaries."""
    result = meters_reconcile()
    return {"checked": result.checked, "drifting": result.drifting, "resolved": result.resolved, "errors": result.errors}


@shared_task(name="billing.auto_refill", acks_late=True, ignore_result=True)
def auto_refill(limit: int = 20) -> dict:
    """Turn pending refill requests into off-session PaymentIntents (SPEC §7)."""
    from billing.services.refills import auto_refill_run

    return auto_refill_run(limit=limit)
