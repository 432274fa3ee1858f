"""Celery tasks of the metering app: thin wrappers around services."""

from __future__ import annotations

import logging

from celery import shared_task

from config.tasks import DB_JOB_OPTIONS

from .services import meters_close_due, partitions_analyze, partitions_ensure, partitions_prune, rollups_compact

logger = logging.getLogger(__name__)


@shared_task(
    name="metering.close_periods",
    **DB_JOB_OPTIONS,
)
def close_periods() -> int:
    """Close every usage period that has ended (period_close snapshots).
    Idempotent: a period is closed exactly once whoever runs first."""
    closed = meters_close_due()
    if closed:
        logger.info("usage periods closed", extra={"closed": closed})
    return closed


@shared_task(
    name="metering.create_partitions",
    **DB_JOB_OPTIONS,
)
def create_partitions() -> list[str]:
    """Usage-event partitions of the coming months, and fresh planner
    statistics of the month being written (PostgreSQL; no-op on SQLite)."""
    created = partitions_ensure()
    if created:
        logger.info("usage event partitions created", extra={"partitions": created})
    partitions_analyze()
    return created


@shared_task(
    name="metering.prune_events",
    **DB_JOB_OPTIONS,
)
def prune_events() -> list[str]:
    """Drop months of raw usage events past USAGE_EVENT_RETENTION_MONTHS, each
    only once nothing depends on its rows (metering.services.partitions)."""
    result = partitions_prune()
    if result.dropped or result.kept:
        logger.info("usage event partitions pruned", extra={"dropped": result.dropped, "kept": result.kept})
    return result.dropped


@shared_task(
    name="metering.compact_rollups",
    # A deadlock with a writer (the fold locks a day's dimension rows) is
    # transient: the retry folds what is left.
    **DB_JOB_OPTIONS,
)
def compact_rollups() -> dict:
    """Prune hourly usage totals older than 35 days, merge a dimension's older
    hours into days and fold values beyond a day's top 100 into `other`
    (metering.services.rollups.rollups_compact). Idempotent."""
    result = rollups_compact()
    if result.hours_pruned or result.groups_folded:
        logger.info(
            "usage rollups compacted",
            extra={"hours_pruned": result.hours_pruned, "groups_folded": result.groups_folded, "rows_moved": result.rows_moved},
        )
    return {"hoursPruned": result.hours_pruned, "groupsFolded": result.groups_folded, "rowsMoved": result.rows_moved}
