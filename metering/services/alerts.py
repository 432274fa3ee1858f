"""Usage alerts (SPEC §5, §11): crossing an `alertThreshold` of a limit emits
`usage.threshold_reached` (and `usage.limit_reached` at 100 %) exactly once per
meter period and threshold.

The hook every usage write calls is `usage_alerts_emit(event=…, feature=…)`,
once per written event, right after the counter moved:
- The common case costs nothing but Python arithmetic: no limit, or no
  threshold between the event's previous and new value → return at once, no
  query, no cache round trip.
- On a crossing, one INSERT … ON CONFLICT DO NOTHING into `UsageAlert`
  (unique per meter and threshold) decides who notifies: concurrent tracks,
  a batch and a correction racing across the same threshold, or a value
  lowered and raised again in the same period, notify once. The events are
  written through the outbox (`notifications.event_emit`) in the same
  transaction as the alert rows.
- Every usage write calls it inside its own transaction (tracks through
  `tracking._after_counter_update`), so the usage change and its
  notification commit together.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from companies.selectors import external_org_id_for
from config.api.serializers import iso_utc
from notifications.models import EventType
from notifications.services import event_emit

from ..models import UsageAlert, UsageMeter
from ..rules import FeatureInfo

LIMIT = 100


def threshold_level(quantity_limit: int, percent: int) -> int:
    """The usage at which `percent` of the limit is reached (rounded up: 80 %
    of 5 is reached at 4)."""
    return -(-quantity_limit * percent // 100)


def crossed_thresholds(
    *, thresholds: tuple[int, ...], quantity_limit: int | None, previous_value: int, new_value: int
) -> list[int]:
    """Thresholds (percent) whose level lies in (previous_value, new_value]. The
    limit itself (100) is always watched, for `usage.limit_reached`."""
    if quantity_limit is None or quantity_limit <= 0 or new_value <= previous_value:
        return []
    watched = set(thresholds) | {LIMIT}
    return [
        percent
        for percent in sorted(watched)
        if previous_value < threshold_level(quantity_limit, percent) <= new_value
    ]


def usage_alerts_emit(*, event: dict, feature: FeatureInfo, now: datetime | None = None) -> list[int]:
    """Notify the thresholds `event` (a just-written usage event row, see
    `metering.services.events`) crossed and that were not notified before in
    this meter period. Returns the thresholds notified."""
    crossed = crossed_thresholds(
        thresholds=feature.alert_thresholds,
        quantity_limit=event["quantity_limit"],
        previous_value=event["previous_value"],
        new_value=event["new_value"],
    )
    if not crossed:
        return []
    now = now or timezone.now()
    with transaction.atomic():
        claimed = _alerts_claim(
            meter_id=event["meter_id"],
            thresholds=crossed,
            quantity_limit=event["quantity_limit"],
            usage_event_id=event["id"],
            now=now,
        )
        if claimed:
            _emit(event=event, feature=feature, thresholds=claimed, now=now)
    return claimed


def _alerts_claim(*, meter_id: UUID, thresholds: list[int], quantity_limit: int, usage_event_id, now) -> list[int]:
    """Insert one row per threshold; the ones that were not there already are ours."""
    table = connection.ops.quote_name(UsageAlert._meta.db_table)
    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(thresholds))
    params: list = []
    meter_value = UsageAlert._meta.get_field("meter").get_db_prep_value(meter_id, connection)
    event_value = UsageAlert._meta.get_field("usage_event_id").get_db_prep_value(usage_event_id, connection)
    created_value = UsageAlert._meta.get_field("created_at").get_db_prep_value(now, connection)
    for threshold in thresholds:
        params += [meter_value, threshold, quantity_limit, event_value, created_value]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (meter_id, threshold, quantity_limit, usage_event_id, created_at) VALUES {rows} "
            "ON CONFLICT (meter_id, threshold) DO NOTHING RETURNING threshold",
            params,
        )
        return sorted(row[0] for row in cursor.fetchall())


def _emit(*, event, feature: FeatureInfo, thresholds: list[int], now: datetime) -> None:
    period_start, period_end = UsageMeter.objects.filter(pk=event["meter_id"]).values_list("period_start", "period_end").get()
    external_org_id = external_org_id_for(product_id=event["product_id"], company_id=event["company_id"])
    base = {
        "companyId": str(event["company_id"]),
        "externalOrgId": external_org_id,
        "featureCode": feature.code,
        "quantityLimit": event["quantity_limit"],
        "currentUsage": event["new_value"],
        "previousUsage": event["previous_value"],
        "periodStart": iso_utc(period_start),
        "resetAt": iso_utc(period_end),
        "meterId": str(event["meter_id"]),
        "usageEventId": str(event["id"]),
    }
    notifications = []
    for percent in thresholds:
        if percent in feature.alert_thresholds:
            level = threshold_level(event["quantity_limit"], percent)
            data = {**base, "threshold": percent, "thresholdUsage": level}
            notifications.append((EventType.USAGE_THRESHOLD_REACHED, data))
        if percent == LIMIT:
            notifications.append((EventType.USAGE_LIMIT_REACHED, base))
    for index, (event_type, data) in enumerate(notifications):
        # A microsecond apart, so the feed lists them in the order they happened.
        event_emit(product=event["product_id"], type=event_type, data=data, now=now + timedelta(microseconds=index))
