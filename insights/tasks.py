"""Celery tasks of the insights app: thin wrappers around services."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from .services import lifecycle_update

logger = logging.getLogger(__name__)


@shared_task(
    name="insights.update_lifecycle",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def update_lifecycle() -> int:
    """Apply the lifecycle rule (SPEC §3) to every account. Idempotent."""
    changed = lifecycle_update()
    if changed:
        logger.info("account statuses changed", extra={"changed": changed})
    return changed
