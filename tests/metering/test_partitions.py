"""Monthly partitions of the usage-event table and retention (PostgreSQL only;
SQLite keeps a plain table). docs/scaling.md."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from metering.models import (
    StripeDeliveryStatus,
    UsageDailyRollup,
    UsageEvent,
    UsageEventKey,
    UsageEventPartitionDrop,
    UsageMeter,
    UsageSnapshot,
)
from metering.services import meters_close_due, rollups_rebuild, usage_track
from metering.services.partitions import (
    DEFAULT_PARTITION,
    add_months,
    is_partitioned,
    month_start,
    partition_create,
    partition_name,
    partitions_list,
    partitions_prune,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        return cursor.fetchone()[0]


def _copy(event: UsageEvent, *, event_time: datetime, key: str | None = None) -> UsageEvent:
    event.pk = uuid.uuid4()
    event.event_time = event_time
    event.idempotency_key = key
    event._state.adding = True
    event.save()
    return event


def test_migrated_table_is_partitioned_with_months_around_now():
    assert is_partitioned()
    current = month_start(timezone.now())
    months = [month for _, month in partitions_list()]
    assert add_months(current, -2) in months and current in months and add_months(current, 3) in months


def test_idempotency_key_is_unique_across_partitions(product, company, access):
    usage_track(product_id=product.id, feature_code="ai_credit", company_id=company.id, idempotency_key="k-1")
    event = UsageEvent.objects.get(idempotency_key="k-1")
    assert UsageEventKey.objects.filter(idempotency_key="k-1", product_id=product.id, event_id=event.id).exists()
    # The same (product, key) with an event time in another month: refused by the key table.
    with pytest.raises(IntegrityError), transaction.atomic():
        _copy(event, event_time=event.event_time - timedelta(days=40), key="k-1")
    # The retry answers with the stored result and counts nothing.
    again = usage_track(product_id=product.id, feature_code="ai_credit", company_id=company.id, idempotency_key="k-1")
    assert again.replayed
    assert UsageEvent.objects.filter(idempotency_key="k-1").count() == 1
    assert UsageMeter.objects.get().value == 1


def test_create_partitions_job_and_rows_move_out_of_default(product, company, access):
    usage_track(product_id=product.id, feature_code="ai_credit", company_id=company.id)
    far = datetime(2031, 5, 17, tzinfo=UTC)
    _copy(UsageEvent.objects.get(), event_time=far)  # no partition for 2031: the DEFAULT takes it
    assert _count(DEFAULT_PARTITION) == 1
    assert partition_create(far) is True
    assert partition_create(far) is False
    assert _count(DEFAULT_PARTITION) == 0
    assert _count(partition_name(month_start(far))) == 1
    assert UsageEvent.objects.count() == 2

    call_command("run_job", "create_partitions")
    names = {name for name, _ in partitions_list()}
    assert partition_name(add_months(month_start(timezone.now()), 3)) in names


def test_prune_drops_a_month_only_when_safe_and_numbers_stay(product, company, make_metered, settings):
    feature, _ = make_metered("api_calls", company=company, limit=None, included=2, meter_event="api_calls")
    now = timezone.now()
    for index in range(5):
        usage_track(product_id=product.id, feature_code="api_calls", company_id=company.id, idempotency_key=f"p-{index}")
    meter = UsageMeter.objects.get(feature=feature)
    rollups_before = list(UsageDailyRollup.objects.values_list("day", "quantity", "billable_quantity", "events"))
    later = add_months(month_start(now), 3)  # the current month is then past a 2-month retention
    current = partition_name(month_start(now))

    # Pending delivery to Stripe (billable events of a feature with a Stripe meter) blocks the drop.
    UsageEvent.objects.filter(billable_delta__gt=0).update(stripe_delivery_status=StripeDeliveryStatus.PENDING)
    result = partitions_prune(now=later, keep_months=2)
    assert "Stripe" in result.kept[current]
    UsageEvent.objects.update(stripe_delivery_status=StripeDeliveryStatus.DELIVERED)

    # The meter's period is still open: no period_close snapshot yet.
    result = partitions_prune(now=later, keep_months=2)
    assert "not closed" in result.kept[current]
    meters_close_due(now=later)
    snapshot = UsageSnapshot.objects.get(meter=meter, snapshot_type="period_close")

    result = partitions_prune(now=later, keep_months=2)
    assert current in result.dropped and not result.kept
    assert UsageEvent.objects.count() == 0
    assert not UsageEventKey.objects.exists()
    assert UsageEventPartitionDrop.objects.get(partition=current).events == 5
    meter.refresh_from_db()
    assert meter.value == 5
    snapshot.refresh_from_db()
    assert (snapshot.absolute_value, snapshot.billable_value) == (5, 3)
    # Rollups stay, and a rebuild from the events leaves the dropped days alone.
    rollups_rebuild()
    assert list(UsageDailyRollup.objects.values_list("day", "quantity", "billable_quantity", "events")) == rollups_before

    # Nothing is refused afterwards: the month's new events land in the DEFAULT partition.
    usage_track(product_id=product.id, feature_code="api_calls", company_id=company.id, idempotency_key="p-0")
    assert _count(DEFAULT_PARTITION) == 1


def test_prune_keeps_everything_when_retention_is_off(product, company, access):
    usage_track(product_id=product.id, feature_code="ai_credit", company_id=company.id)
    assert partitions_prune(now=add_months(timezone.now(), 12)).dropped == []
    assert UsageEvent.objects.count() == 1


def test_create_partitions_job_refreshes_the_statistics_of_the_month_being_written(product, company, access):
    # Without them the planner's estimates of a month that grows all day go
    # stale when autovacuum does not run (docs/scaling.md, capacity figures).
    from metering.services import partitions_analyze

    usage_track(product_id=product.id, feature_code="ai_credit", company_id=company.id, idempotency_key="k-1")
    current = partition_name(month_start(timezone.now()))

    def reltuples(table: str) -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
            return cursor.fetchone()[0]

    with connection.cursor() as cursor:  # as never analyzed
        cursor.execute(f"UPDATE pg_class SET reltuples = -1 WHERE relname IN ('{current}', 'metering_usageeventkey')")
    call_command("run_job", "create_partitions")
    assert reltuples(current) == 1 and reltuples("metering_usageeventkey") == 1
    early = month_start(timezone.now()) + timedelta(hours=12)
    assert partitions_analyze(now=early)[:2] == [partition_name(add_months(month_start(early), -1)), current]
