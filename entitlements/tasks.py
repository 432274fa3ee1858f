"""Celery tasks of entitlements: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from .services import access_windows_notify


@shared_task(
    name="entitlements.expire_overrides",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def expire_overrides() -> dict:
    """Notify access windows (trials, promotions) that started or ended.
    Idempotent: each boundary is notified once (AccessWindowNotice)."""
    return {"notified": access_windows_notify()}
