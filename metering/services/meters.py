"""Meters and their periods: finding or opening the meter of a period, and
closing ended periods with a `period_close` snapshot exactly once."""

from __future__ import annotations

import logging
from datetime import datetime
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from companies.models import Company
from companies.selectors import company_merged_conflict, company_merged_into
from entitlements.models import FeatureAccess

from ..models import UsageMeter, UsageSnapshot, UsageSnapshotType
from ..periods import Period
from ..rules import billable, db_value
from ..selectors import meters_due_for_close

logger = logging.getLogger(__name__)

CLOSE_ACTOR = "system:metering.close_periods"


def meters_get_or_create(
    *, keys: set[tuple[UUID, UUID, Period]], now: datetime | None = None
) -> dict[tuple[UUID, UUID, datetime], UUID]:
    """Meter ids for (company id, feature id, period), opening missing ones
    at zero. Race-safe: concurrent callers insert with ON CONFLICT DO NOTHING
    on (company, feature, period_start) and then read the one row that won.
    Opening a current period closes the ended periods of that company × feature."""
    if not keys:
        return {}
    now = now or timezone.now()
    wanted = {(company_id, feature_id, period.start): period for company_id, feature_id, period in keys}
    found = _meter_ids(wanted)
    missing = [key for key in wanted if key not in found]
    if missing:
        with transaction.atomic():
            _companies_live_check({company_id for company_id, _, _ in missing})
            UsageMeter.objects.bulk_create(
                [
                    UsageMeter(
                        company_id=company_id,
                        feature_id=feature_id,
                        period_start=start,
                        period_end=wanted[(company_id, feature_id, start)].end,
                        created_at=now,
                        updated_at=now,
                    )
                    for company_id, feature_id, start in missing
                ],
                ignore_conflicts=True,
            )
        found.update(_meter_ids({key: wanted[key] for key in missing}))
        for company_id, feature_id, start in missing:
            period = wanted[(company_id, feature_id, start)]
            if period.contains(now):
                # The first write of a new period: the previous one has ended.
                meters_close_due(
                    now=now, company_id=company_id, feature_id=feature_id,
                    exclude_meter_id=found[(company_id, feature_id, start)],
                )
    return found


def _companies_live_check(company_ids: set[UUID]) -> None:
    """Refuse to open a meter for a merged duplicate (409 naming the kept
    company). Call in the transaction that inserts the meters: FOR SHARE
    waits for a merge in progress (it holds the company FOR NO KEY UPDATE)
    and then sees its tombstone, and a merge that starts later waits for our
    insert and moves the new meter too — so a track that resolved the
    duplicate before the merge committed can never count usage on it after
    its meters moved (metering.services.merge)."""
    table = connection.ops.quote_name(Company._meta.db_table)
    ids = sorted(str(pk) for pk in company_ids)
    placeholders = ", ".join(["%s"] * len(ids))
    lock = " FOR SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE id IN ({placeholders}) AND merged_into_id IS NOT NULL ORDER BY id{lock}",
            [db_value(UsageMeter, "company", pk) for pk in ids],
        )
        row = cursor.fetchone()
    if row is not None:
        company_id = row[0]
        raise company_merged_conflict(company_id=company_id, kept_company_id=company_merged_into(company_id=company_id))


def _meter_ids(keys) -> dict[tuple[UUID, UUID, datetime], UUID]:
    """One query for many meters: IN lists (served by the unique index on
    (company, feature, period_start)) and an exact match in Python, rather
    than an OR of hundreds of conditions the planner handles badly."""
    keys = set(keys)
    rows = UsageMeter.objects.filter(
        company_id__in={key[0] for key in keys},
        feature_id__in={key[1] for key in keys},
        period_start__in={key[2] for key in keys},
    ).values_list("company_id", "feature_id", "period_start", "id")
    return {(row[0], row[1], row[2]): row[3] for row in rows if (row[0], row[1], row[2]) in keys}


def meter_close(*, meter_id: UUID, now: datetime | None = None) -> UsageSnapshot | None:
    """Close an ended period: mark the meter closed and write its
    `period_close` snapshot. Exactly once under any race: the conditional
    UPDATE (closed_at IS NULL) lets one caller through, and its row lock
    holds the value still until the snapshot commits. Returns the snapshot,
    or None if someone else closed it."""
    now = now or timezone.now()
    with transaction.atomic():
        if not UsageMeter.objects.filter(id=meter_id, closed_at__isnull=True).update(closed_at=now):
            return None
        meter = UsageMeter.objects.get(id=meter_id)
        included = (
            FeatureAccess.objects.filter(company_id=meter.company_id, feature_id=meter.feature_id)
            .values_list("included_quantity", flat=True)
            .first()
            or 0
        )
        snapshot = UsageSnapshot.objects.create(
            company_id=meter.company_id,
            feature_id=meter.feature_id,
            meter_id=meter.id,
            absolute_value=meter.value,
            billable_value=billable(meter.value, included),
            snapshot_type=UsageSnapshotType.PERIOD_CLOSE,
            reason=f"Period {meter.period_start:%Y-%m-%d %H:%M} – {meter.period_end:%Y-%m-%d %H:%M} UTC ended.",
            created_by=CLOSE_ACTOR,
            metadata={"periodStart": meter.period_start.isoformat(), "periodEnd": meter.period_end.isoformat()},
            created_at=now,
        )
    return snapshot


def meters_close_due(
    *,
    now: datetime | None = None,
    company_id: UUID | None = None,
    feature_id: UUID | None = None,
    exclude_meter_id: UUID | None = None,
    limit: int = 1000,
) -> int:
    """Close every open meter whose period has ended (optionally of one
    company × feature). Returns how many this call closed."""
    now = now or timezone.now()
    if company_id is None and feature_id is None:
        meter_ids = meters_due_for_close(now=now, limit=limit)
    else:
        meters = UsageMeter.objects.filter(closed_at__isnull=True, period_end__lte=now)
        if company_id is not None:
            meters = meters.filter(company_id=company_id)
        if feature_id is not None:
            meters = meters.filter(feature_id=feature_id)
        meter_ids = list(meters.order_by("period_end").values_list("id", flat=True)[:limit])
    closed = 0
    for meter_id in meter_ids:
        if meter_id != exclude_meter_id and meter_close(meter_id=meter_id, now=now) is not None:
            closed += 1
    if closed:
        logger.debug("usage periods closed", extra={"closed": closed})
    return closed
