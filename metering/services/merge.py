"""Metering's part of a merge (SPEC §3 "usage (meters summed per period;
events re-pointed, never edited otherwise)"; desk.services.company_merge
orchestrates)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.utils import timezone

from ..models import BillingPeriod, UsageAlert, UsageEvent, UsageMeter, UsageSnapshot, UsageSnapshotType
from .rollups import rollups_merge


@dataclass(frozen=True)
class UsageMerged:
    meters: int  # the duplicate's meters moved or summed into the kept company's
    events: int
    snapshots: int
    rollups: int


def usage_merge(*, source_id: UUID, target_id: UUID) -> UsageMerged:
    """Move the duplicate's usage to the kept company: a meter of a period
    (feature, period start) the kept company also has is added to it, any
    other meter moves over; events and snapshots are re-pointed (company and
    meter only), daily rollups summed (`rollups_merge`), billing periods
    moved where the kept company lacks them. Run in the merge's transaction
    with both companies locked.

    Concurrent tracks: every meter of both companies is locked first (FOR
    UPDATE, primary-key order), so a track that already incremented the
    duplicate's meter has committed before we read it, and one that comes
    later finds no meter of the duplicate for its period once we commit and
    is refused by `meters_get_or_create` (the company is a tombstone): no
    increment is lost or counted twice."""
    now = timezone.now()
    meters = list(UsageMeter.objects.select_for_update().filter(company_id__in=[source_id, target_id]).order_by("pk"))
    kept = {(m.feature_id, m.period_start): m for m in meters if m.company_id == target_id}
    moved_meters = 0
    for meter in (m for m in meters if m.company_id == source_id):
        into = kept.get((meter.feature_id, meter.period_start))
        moved_meters += 1
        if into is None:
            UsageMeter.objects.filter(pk=meter.pk).update(company_id=target_id, updated_at=now)
            continue
        UsageMeter.objects.filter(pk=into.pk).update(value=into.value + meter.value, updated_at=now)
        UsageEvent.objects.filter(meter_id=meter.pk).update(meter_id=into.pk)
        snapshots = UsageSnapshot.objects.filter(meter_id=meter.pk)
        if UsageSnapshot.objects.filter(meter_id=into.pk, snapshot_type=UsageSnapshotType.PERIOD_CLOSE).exists():
            # One close snapshot per meter: the duplicate's stays on its (now empty) meter, as history.
            snapshots = snapshots.exclude(snapshot_type=UsageSnapshotType.PERIOD_CLOSE)
        snapshots.update(meter_id=into.pk)
        thresholds = set(UsageAlert.objects.filter(meter_id=into.pk).values_list("threshold", flat=True))
        UsageAlert.objects.filter(meter_id=meter.pk).exclude(threshold__in=thresholds).update(meter_id=into.pk)
        UsageAlert.objects.filter(meter_id=meter.pk).delete()
        if UsageSnapshot.objects.filter(meter_id=meter.pk).exists():
            UsageMeter.objects.filter(pk=meter.pk).update(value=0, closed_at=meter.closed_at or now, updated_at=now)
        else:
            UsageMeter.objects.filter(pk=meter.pk).delete()
    events = UsageEvent.objects.filter(company_id=source_id).update(company_id=target_id)
    snapshots = UsageSnapshot.objects.filter(company_id=source_id).update(company_id=target_id)
    rollups = rollups_merge(from_company_id=source_id, into_company_id=target_id)
    kept_periods = set(BillingPeriod.objects.filter(company_id=target_id).values_list("period_start", "period_end"))
    for period in BillingPeriod.objects.filter(company_id=source_id):
        if (period.period_start, period.period_end) in kept_periods:
            period.delete()
        else:
            BillingPeriod.objects.filter(pk=period.pk).update(company_id=target_id, updated_at=now)
    return UsageMerged(meters=moved_meters, events=events, snapshots=snapshots, rollups=rollups)
