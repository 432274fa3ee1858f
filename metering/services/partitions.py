"""Monthly partitions of the usage-event table and retention (SPEC §10,
docs/scaling.md).

On PostgreSQL `metering_usageevent` is range-partitioned by `event_time`, one
partition per UTC calendar month (`metering_usageevent_pYYYYMM`) plus a
DEFAULT partition, so an insert is never refused for want of a partition.
`partitions_ensure` (job `create_partitions`) keeps the months around now
created ahead; `partitions_prune` (job `prune_events`) drops whole months
older than `USAGE_EVENT_RETENTION_MONTHS` once nothing depends on their rows.
On SQLite the table is a plain table and both are no-ops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ..models import StripeDeliveryStatus, UsageDailyRollup, UsageEvent, UsageEventKey, UsageEventPartitionDrop, UsageMeter
from .rollups import rollup_day_sql

TABLE = UsageEvent._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(month: datetime, months: int) -> datetime:
    index = month.year * 12 + month.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"{TABLE}_p{month:%Y%m}"


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def partitions_list() -> list[tuple[str, datetime]]:
    """The monthly partitions that exist, oldest first: (name, month start)."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s) AND c.relname LIKE %s ORDER BY c.relname",
            [TABLE, f"{TABLE}_p%"],
        )
        names = [row[0] for row in cursor.fetchall()]
    return [(name, datetime.strptime(name[-6:], "%Y%m").replace(tzinfo=UTC)) for name in names]


def _literal(moment: datetime) -> str:
    return f"'{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}+00'"


def partition_create(month: datetime) -> bool:
    """Create the partition of one month (no-op if it exists). Rows the
    DEFAULT partition already holds for that month are moved into it, in one
    transaction. Returns whether it was created."""
    month = month_start(month)
    name = partition_name(month)
    start, end = _literal(month), _literal(add_months(month, 1))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cursor.fetchone()[0]:
            return False
        # Short lock: nobody inserts into the month while its rows move.
        cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        in_range = f"event_time >= {start} AND event_time < {end}"
        # A plain table (not yet attached): the key trigger does not fire; the
        # moved events' keys are already in the key table.
        cursor.execute(f"INSERT INTO {name} SELECT * FROM {DEFAULT_PARTITION} WHERE {in_range}")
        cursor.execute(f"DELETE FROM {DEFAULT_PARTITION} WHERE {in_range}")
        cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})")
    return True


def partitions_ensure(*, now: datetime | None = None, ahead: int | None = None) -> list[str]:
    """Make sure the partitions of the last two months (35-day backdating),
    the current one and `ahead` (USAGE_EVENT_PARTITIONS_AHEAD) next months
    exist. Idempotent. Returns the partitions created."""
    if not is_partitioned():
        return []
    now = now or timezone.now()
    ahead = settings.USAGE_EVENT_PARTITIONS_AHEAD if ahead is None else ahead
    current = month_start(now)
    created = []
    for offset in range(-2, ahead + 1):
        month = add_months(current, offset)
        if partition_create(month):
            created.append(partition_name(month))
    return created


def partitions_analyze(*, now: datetime | None = None) -> list[str]:
    """ANALYZE the current month's partition (and the previous one in the
    first days of a month) and the key table: the planner's statistics of the
    tables that grow all day. Autovacuum does this by itself when it runs, but
    measured with it off (bench/capacity.py, docs/scaling.md) the batch ingest
    fell from ~12,500 to ~8,600 events/s once the month reached ~13 million
    rows never analyzed, and was back at ~12,500 after one ANALYZE (3 s at 20
    million rows). The daily `create_partitions` job calls this. Returns the
    tables analyzed."""
    if not is_partitioned():
        return []
    now = now or timezone.now()
    current = month_start(now)
    months = [current] if now - current > timedelta(days=2) else [add_months(current, -1), current]
    existing = {name for name, _ in partitions_list()}
    tables = [name for name in map(partition_name, months) if name in existing]
    tables.append(UsageEventKey._meta.db_table)
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    return tables


@dataclass
class PruneResult:
    dropped: list[str] = field(default_factory=list)
    # partition → why it was kept although past retention.
    kept: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _blocker(cursor, name: str) -> str | None:
    """Why the partition may not be dropped yet, or None."""
    waiting = [StripeDeliveryStatus.PENDING.value, StripeDeliveryStatus.FAILED.value]
    cursor.execute(f"SELECT 1 FROM {name} WHERE stripe_delivery_status = ANY(%s) LIMIT 1", [waiting])
    if cursor.fetchone():
        return "events waiting for Stripe delivery"
    meters = UsageMeter._meta.db_table
    cursor.execute(
        f"SELECT 1 FROM {name} e JOIN {meters} m ON m.id = e.meter_id "
        "WHERE m.closed_at IS NULL AND m.period_end IS NOT NULL LIMIT 1"
    )
    if cursor.fetchone():
        return "a usage period with events in it is not closed (no period_close snapshot yet)"
    rollups = UsageDailyRollup._meta.db_table
    day = rollup_day_sql("event_time")
    cursor.execute(
        f"SELECT 1 FROM (SELECT company_id, feature_id, {day} AS day, SUM(quantity) AS q, "
        f"SUM(billable_delta) AS b, COUNT(*) AS n FROM {name} GROUP BY 1, 2, 3) e "
        f"LEFT JOIN {rollups} r ON r.company_id = e.company_id AND r.feature_id = e.feature_id AND r.day = e.day "
        "WHERE r.id IS NULL OR r.quantity <> e.q OR r.billable_quantity <> e.b OR r.events <> e.n LIMIT 1"
    )
    if cursor.fetchone():
        return "daily rollups do not match the events"
    return None


def partitions_prune(*, now: datetime | None = None, keep_months: int | None = None) -> PruneResult:
    """Drop the monthly partitions that ended more than `keep_months`
    (USAGE_EVENT_RETENTION_MONTHS; 0 = keep forever) before the current month,
    each only when no event in it waits for Stripe (pending/failed), every
    usage period it has events of is closed (its period_close snapshot is
    written) and the daily rollups of its days equal its events. Meters,
    snapshots and rollups are stored values: they do not change. The
    partition's idempotency keys go with it. The DEFAULT partition is never
    dropped."""
    result = PruneResult()
    keep = settings.USAGE_EVENT_RETENTION_MONTHS if keep_months is None else keep_months
    if not keep or not is_partitioned():
        return result
    if keep < 2:  # noqa: PLR2004
        raise ValueError("USAGE_EVENT_RETENTION_MONTHS must be 0 (keep forever) or at least 2 (35-day backdating).")
    started = time.perf_counter()
    horizon = add_months(month_start(now or timezone.now()), -keep)
    for name, month in partitions_list():
        end = add_months(month, 1)
        if end > horizon:
            break
        with transaction.atomic(), connection.cursor() as cursor:
            # No insert or delivery update into the month while it is checked and dropped.
            cursor.execute(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")
            reason = _blocker(cursor, name)
            if reason:
                # Oldest first, and stop here: the dropped range stays one
                # contiguous past (events_retained_from).
                result.kept[name] = reason
                break
            cursor.execute(f"SELECT COUNT(*) FROM {name}")
            events = cursor.fetchone()[0]
            UsageEventKey.objects.filter(event_time__gte=month, event_time__lt=end).delete()
            # Deferred FK checks of rows written earlier in this transaction
            # (the caller's) must run before their table goes.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
            cursor.execute(f"DROP TABLE {name}")
            UsageEventPartitionDrop.objects.create(partition=name, range_start=month, range_end=end, events=events)
        result.dropped.append(name)
    result.seconds = time.perf_counter() - started
    return result


def events_retained_from() -> datetime | None:
    """Raw events before this moment were dropped by retention (None: none
    were). Rebuilding rollups from events must not touch earlier days."""
    last = UsageEventPartitionDrop.objects.order_by("-range_end").values_list("range_end", flat=True).first()
    return last
