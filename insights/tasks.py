"""Celery tasks of the insights app: thin wrappers around services."""

from __future__ import annotations

import logging

from celery import shared_task

from config.tasks import DB_JOB_OPTIONS

from .services import health_compute, lifecycle_update, revenue_snapshot, segments_sync

logger = logging.getLogger(__name__)


@shared_task(
    name="insights.update_lifecycle",
    **DB_JOB_OPTIONS,
)
def update_lifecycle() -> int:
    """Apply the lifecycle rule (SPEC §3) to every account. Idempotent."""
    changed = lifecycle_update()
    if changed:
        logger.info("account statuses changed", extra={"changed": changed})
    return changed


@shared_task(
    name="insights.snapshot_revenue",
    **DB_JOB_OPTIONS,
)
def snapshot_revenue() -> int:
    """Every account's MRR from its subscriptions and today's snapshot (SPEC §8). Idempotent."""
    changed = revenue_snapshot()
    if changed:
        logger.info("account MRR changed", extra={"changed": changed})
    return changed


@shared_task(
    name="insights.compute_health",
    **DB_JOB_OPTIONS,
)
def compute_health() -> int:
    """Every account's health score and today's history row (SPEC §8); then
    the lifecycle rule for accounts whose risk changed. Idempotent."""
    scored = health_compute()
    logger.info("health scores computed", extra={"accounts": scored})
    return scored


@shared_task(
    name="insights.sync_segments",
    **DB_JOB_OPTIONS,
)
def sync_segments() -> int:
    """Every segment's membership, with entered/left events (SPEC §8). Idempotent."""
    changes = sum(result.entered + result.left for result in segments_sync())
    if changes:
        logger.info("segment memberships changed", extra={"changed": changes})
    return changes
