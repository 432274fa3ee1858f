"""Usage counters, the append-only event log behind them, and snapshots (SPEC §5).

A UsageMeter is one company's usage of one metered feature in one period.
Every change to a meter is a UsageEvent written in the same transaction; the
meter value is the sum of its events' quantities (`new_value` of the latest
event). Events are never edited or deleted — corrections are new events — with
one exception: the Stripe delivery bookkeeping (`stripe_*`, `delivered_at`), which
only `metering.services.delivery` writes (billing's delivery pass calls it).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from companies.models import Company, Product
from config.errors import ApplicationError
from entitlements.models import Feature

from .error_codes import MeteringErrorCode


class UsageMeter(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="usage_meters")
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="usage_meters")
    period_start = models.DateTimeField(help_text="Inclusive, UTC.")
    period_end = models.DateTimeField(null=True, blank=True, help_text="Exclusive, UTC. Empty = never resets.")
    value = models.BigIntegerField(default=0, help_text="Usage in this period.")
    # Set exactly once, by whoever wins the conditional UPDATE that writes the
    # period_close snapshot (see services.periods.meter_close).
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-period_start"]
        verbose_name = "usage meter"
        permissions = [("adjust_usage", "Can adjust usage")]
        constraints = [
            models.UniqueConstraint(fields=["company", "feature", "period_start"], name="usage_meter_unique_period"),
            models.CheckConstraint(condition=Q(value__gte=0), name="usage_meter_value_non_negative"),
            models.CheckConstraint(
                condition=Q(period_end__isnull=True) | Q(period_end__gt=models.F("period_start")),
                name="usage_meter_period_ordered",
            ),
        ]
        indexes = [
            # The proactive close job: open meters whose period has ended.
            models.Index(fields=["period_end"], condition=Q(closed_at__isnull=True), name="usage_meter_open_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.company_id} · {self.feature_id} · {self.period_start:%Y-%m-%d}"

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None


class UsageEventType(models.TextChoices):
    INCREMENT = "increment", "Increment"
    SET = "set", "Set"
    ADJUSTMENT = "adjustment", "Adjustment"


class UsageSource(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Admin"
    SYSTEM = "system", "System"


class StripeDeliveryStatus(models.TextChoices):
    NOT_APPLICABLE = "not_applicable", "Not applicable"
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


# The only columns anyone may change once an event exists (metering.services.delivery).
STRIPE_DELIVERY_FIELDS = frozenset(
    {
        "stripe_delivery_status",
        "stripe_delivery_error",
        "stripe_delivery_attempts",
        "stripe_next_attempt_at",
        "delivered_at",
    }
)


class AppendOnlyError(ApplicationError):
    """Code tried to change or delete a ledger row: a bug, never caller input
    (a correction is a new row)."""

    reason = MeteringErrorCode.APPEND_ONLY


class UsageEventQuerySet(models.QuerySet):
    def delete(self):
        raise AppendOnlyError("Usage events are append-only; record a correction instead.")

    delete.queryset_only = True


class UsageEvent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Idempotency keys are scoped to the product of the API key. Indexes: every
    # index costs each of the many inserts, so the FKs that are covered by a
    # composite index (company, product) or never queried alone (meter) have
    # none of their own; `feature` keeps one for the PROTECT check on delete.
    # No database FK constraints either (db_constraint=False): PostgreSQL
    # checks each with a lookup per inserted row (4 per event, a quarter of
    # its work on a batch). The one insert path writes only the company,
    # feature and meter it resolved in the same transaction (the meter row
    # locked), and PROTECT still refuses deleting a referenced row through the
    # ORM; docs/scaling.md "Usage events without FK constraints".
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    company = models.ForeignKey(
        Company, on_delete=models.PROTECT, related_name="usage_events", db_index=False, db_constraint=False
    )
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="usage_events", db_constraint=False)
    meter = models.ForeignKey(
        UsageMeter, on_delete=models.PROTECT, related_name="events", db_index=False, db_constraint=False
    )
    event_type = models.CharField(max_length=16, choices=UsageEventType.choices)
    quantity = models.BigIntegerField(help_text="The change this event made to the meter (negative for corrections).")
    previous_value = models.BigIntegerField()
    new_value = models.BigIntegerField()
    # What was in force when the event was written, so the original UsageResult
    # can be replayed exactly and billing knows what was billable.
    quantity_limit = models.BigIntegerField(null=True, blank=True)
    included_quantity = models.BigIntegerField(default=0)
    billable_delta = models.BigIntegerField(
        default=0,
        help_text="max(0, new − included) − max(0, previous − included): what this event adds to (or takes "
        "from) the billable quantity. This is what is sent to Stripe.",
    )
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    # sha256 of the canonical request body: same key + different body → 409.
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    event_time = models.DateTimeField(help_text="When the usage happened (may be backdated up to 35 days).")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    source = models.CharField(max_length=16, choices=UsageSource.choices, default=UsageSource.API)
    performed_by = models.CharField(max_length=200, blank=True, default="", help_text="Free text given by the caller.")
    actor_kind = models.CharField(max_length=16, blank=True, default="")
    actor_id = models.CharField(max_length=64, blank=True, default="")
    actor_label = models.CharField(max_length=200, blank=True, default="")
    adjustment_reason = models.TextField(blank=True, default="")
    # No database FK into the event table (db_constraint=False): on PostgreSQL it
    # is partitioned by event_time and its primary key is (id, event_time), so
    # `id` alone has no unique index a foreign key could reference
    # (docs/scaling.md). The services only ever point at events they just read.
    adjusts_event = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="adjustments",
        db_index=False,
        db_constraint=False,
    )
    metadata = models.JSONField(default=dict, blank=True)

    # --- Stripe delivery (written only by metering.services.delivery) -----------
    stripe_delivery_status = models.CharField(
        max_length=16, choices=StripeDeliveryStatus.choices, default=StripeDeliveryStatus.NOT_APPLICABLE
    )
    stripe_event_identifier = models.CharField(
        max_length=100, blank=True, default="", help_text="Stable meter event identifier (the event id)."
    )
    stripe_delivery_error = models.TextField(blank=True, default="")
    stripe_delivery_attempts = models.PositiveIntegerField(default=0)
    stripe_next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = UsageEventQuerySet.as_manager()

    class Meta:
        ordering = ["-event_time", "-created_at"]
        verbose_name = "usage event"
        permissions = [("retry_usage_delivery", "Can retry delivery of usage events to Stripe")]
        constraints = [
            # Exactly once: the database, not a read-then-write, decides which of
            # two concurrent requests with one key wins. Key first so the admin's
            # search by key alone can use the index.
            models.UniqueConstraint(
                fields=["idempotency_key", "product"],
                condition=Q(idempotency_key__isnull=False),
                name="usage_event_unique_idempotency_key",
            ),
            models.CheckConstraint(condition=Q(new_value__gte=0), name="usage_event_new_value_non_negative"),
            models.CheckConstraint(condition=Q(previous_value__gte=0), name="usage_event_previous_value_non_negative"),
        ]
        indexes = [
            models.Index(fields=["company", "feature", "-event_time"], name="usage_event_history_idx"),
            models.Index(fields=["company", "-event_time"], name="usage_event_company_idx"),
            # Billing's delivery queue: pending events due for an attempt.
            models.Index(
                fields=["stripe_delivery_status", "stripe_next_attempt_at", "created_at"],
                condition=Q(stripe_delivery_status="pending"),
                name="usage_event_delivery_queue_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.quantity:+d} ({self.id})"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            update_fields = kwargs.get("update_fields")
            if update_fields is None or not set(update_fields) <= STRIPE_DELIVERY_FIELDS:
                raise AppendOnlyError("Usage events are append-only; only Stripe delivery fields may change.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Usage events are append-only; record a correction instead.")

    @property
    def billable_quantity(self) -> int:
        from .rules import billable

        return billable(self.new_value, self.included_quantity)


class UsageSnapshotType(models.TextChoices):
    SET = "set", "Set by staff"
    PERIOD_CLOSE = "period_close", "Period closed"
    RECONCILIATION = "reconciliation", "Reconciliation"


class UsageSnapshot(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="usage_snapshots")
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="usage_snapshots")
    meter = models.ForeignKey(UsageMeter, on_delete=models.PROTECT, related_name="snapshots")
    absolute_value = models.BigIntegerField()
    billable_value = models.BigIntegerField()
    snapshot_type = models.CharField(max_length=16, choices=UsageSnapshotType.choices)
    reason = models.TextField(blank=True, default="")
    created_by = models.CharField(max_length=200, blank=True, default="")
    # No database FK (the event table is partitioned, see UsageEvent.adjusts_event);
    # after retention drops the event's month this id may point at nothing.
    trigger_event = models.ForeignKey(
        UsageEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="snapshots", db_constraint=False
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "usage snapshot"
        constraints = [
            # A period is closed once, whatever races the close job and the
            # first event of the next period run.
            models.UniqueConstraint(
                fields=["meter"], condition=Q(snapshot_type="period_close"), name="usage_snapshot_one_close_per_meter"
            ),
        ]
        indexes = [models.Index(fields=["company", "feature", "-created_at"], name="usage_snapshot_history_idx")]

    def __str__(self) -> str:
        return f"{self.snapshot_type} {self.absolute_value} ({self.id})"


class UsageAlert(models.Model):
    """That a meter's period crossed one alert threshold (percent of its
    limit) and the product was notified. The unique constraint is what makes
    the notification exactly once per meter period and threshold, whatever
    races or corrections move the value across it again."""

    id = models.BigAutoField(primary_key=True)
    meter = models.ForeignKey(UsageMeter, on_delete=models.CASCADE, related_name="alerts")
    threshold = models.PositiveSmallIntegerField(help_text="Percent of the limit.")
    quantity_limit = models.BigIntegerField()
    # The usage event that crossed it (no FK: the event table is append-only and partition-ready).
    usage_event_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["meter", "threshold"], name="usage_alert_once_per_meter_threshold"),
        ]

    def __str__(self) -> str:
        return f"{self.threshold}% of {self.quantity_limit} ({self.meter_id})"


class BillingPeriod(models.Model):
    """A period of one of the company's subscriptions that grant access, as
    billing reports it (`metering.services.billing_periods_set`): metering
    cannot read subscriptions (billing is downstream), so billing pushes them
    here (SPEC §1 (b)). `billing_period` meters follow the latest-starting
    period containing a moment; a moment none contains falls in its calendar
    month."""

    id = models.BigAutoField(primary_key=True)
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "billing period"
        constraints = [
            models.UniqueConstraint(fields=["company", "period_start", "period_end"], name="billing_period_unique"),
            models.CheckConstraint(condition=Q(period_end__gt=models.F("period_start")), name="billing_period_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.company_id} · {self.period_start:%Y-%m-%d} – {self.period_end:%Y-%m-%d}"



class UsageDailyRollup(models.Model):
    """Per (company, feature, UTC day of `event_time`): the summed quantity,
    billable quantity (sum of `billable_delta`) and number of usage events.

    Kept exact in the transaction of every event insert (tracks, batches,
    set, adjust: `metering.services.rollups`, called from the one insert path)
    and moved by `rollups_merge`; `manage.py backfill_rollups` rebuilds them
    from the events. Statistics (§8) read only this table."""

    id = models.BigAutoField(primary_key=True)
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+", db_index=False)
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="+", db_index=False)
    day = models.DateField(help_text="UTC day of the events' event_time.")
    quantity = models.BigIntegerField(default=0)
    billable_quantity = models.BigIntegerField(default=0)
    events = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["company", "feature", "day"]
        verbose_name = "usage daily rollup"
        constraints = [
            # The upsert's conflict target and the statistics' index: a year of
            # one company's days is one range scan of it.
            models.UniqueConstraint(fields=["company", "feature", "day"], name="usage_rollup_unique_day"),
        ]
        indexes = [models.Index(fields=["feature"], name="usage_rollup_feature_idx")]

    def __str__(self) -> str:
        return f"{self.company_id} · {self.feature_id} · {self.day}"


class UsageHourlyRollup(models.Model):
    """Per (company, feature, UTC hour of `event_time`): the same totals as
    `UsageDailyRollup`, kept for the last 35 days (peak hours, `groupBy=hour`;
    older hours are pruned by `metering.compact_rollups`: their days live on
    in the daily rollups). Written with the daily rollup, by the same paths."""

    id = models.BigAutoField(primary_key=True)
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+", db_index=False)
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="+", db_index=False)
    hour = models.DateTimeField(help_text="Start of the UTC hour of the events' event_time.")
    quantity = models.BigIntegerField(default=0)
    billable_quantity = models.BigIntegerField(default=0)
    events = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["company", "feature", "hour"]
        verbose_name = "usage hourly rollup"
        constraints = [
            models.UniqueConstraint(fields=["company", "feature", "hour"], name="usage_rollup_unique_hour"),
        ]
        indexes = [
            models.Index(fields=["feature"], name="usage_hourly_feature_idx"),
            models.Index(fields=["hour"], name="usage_hourly_hour_idx"),  # the prune's range
        ]

    def __str__(self) -> str:
        return f"{self.company_id} · {self.feature_id} · {self.hour:%Y-%m-%d %H}h"


class UsageDimensionRollup(models.Model):
    """Per (company, feature, dimension, value, period): totals of the events
    whose metadata[dimension] had that value (SPEC §5). `period_start` is the
    UTC hour for the last 35 days and the UTC day (midnight) after
    `metering.compact_rollups` has merged an older day's hours. Per day at
    most 100 values keep rows of their own once compacted; the others are
    folded into the value `other` (docs/metering.md "Dimensions": which 100,
    and why that is exact under concurrency). An event without the key counts
    under the value "" (the API's null)."""

    id = models.BigAutoField(primary_key=True)
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+", db_index=False)
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="+", db_index=False)
    dimension = models.CharField(max_length=64)
    value = models.CharField(max_length=100, blank=True)
    period_start = models.DateTimeField(help_text="UTC hour (last 35 days) or UTC day (older, compacted).")
    quantity = models.BigIntegerField(default=0)
    billable_quantity = models.BigIntegerField(default=0)
    events = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["company", "feature", "dimension", "period_start", "value"]
        verbose_name = "usage dimension rollup"
        constraints = [
            # The upsert's conflict target, the statistics' range scan (one
            # dimension of one feature over time) and the order in which writers
            # and the fold lock rows (company, feature, dimension, period, value).
            models.UniqueConstraint(
                fields=["company", "feature", "dimension", "period_start", "value"], name="usage_rollup_unique_value"
            ),
        ]
        indexes = [
            models.Index(fields=["feature"], name="usage_dim_rollup_feature_idx"),
            models.Index(fields=["period_start"], name="usage_dim_rollup_start_idx"),  # the compaction's range
        ]

    def __str__(self) -> str:
        return f"{self.company_id} · {self.feature_id} · {self.dimension}={self.value} · {self.period_start}"


class UsageEventKey(models.Model):
    """Exactly once on PostgreSQL, where usage events are partitioned by month:
    a unique index on a partitioned table must contain the partition key
    (event_time), which would make (product, idempotency key) unique only per
    event time. This small unpartitioned table holds one row per keyed event,
    written by a trigger on the event table in the INSERT's own statement, so a
    second event with the same (product, key) fails the insert with the same
    IntegrityError the unique index gives on SQLite (docs/scaling.md).
    Unused on SQLite. Rows of dropped partitions go with them (retention)."""

    id = models.BigAutoField(primary_key=True)
    product_id = models.UUIDField()
    idempotency_key = models.CharField(max_length=255)
    event_id = models.UUIDField()
    event_time = models.DateTimeField()

    class Meta:
        verbose_name = "usage event idempotency key"
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key", "product_id"], name="usage_event_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key} ({self.product_id})"


class UsageEventPartitionDrop(models.Model):
    """One month of raw usage events dropped by retention (`prune_events`):
    the audit trail, and where `events_retained_from` reads the horizon below
    which rollups must not be rebuilt from events."""

    id = models.BigAutoField(primary_key=True)
    partition = models.CharField(max_length=63, unique=True)
    range_start = models.DateTimeField()
    range_end = models.DateTimeField()
    events = models.BigIntegerField(default=0)
    dropped_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-range_start"]
        verbose_name = "dropped usage event partition"

    def __str__(self) -> str:
        return f"{self.partition} ({self.range_start:%Y-%m})"
