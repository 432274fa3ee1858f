"""Daily usage rollups (SPEC §5): per (company, feature, UTC day of the
event's `event_time`) the summed quantity, billable quantity (the events'
`billable_delta`) and number of events.

Exactness: every usage event is written through the one insert path
(`events.usage_events_insert`, or the single track's one statement on
PostgreSQL, `tracking._track_sql`), and both add the event to its rollup in
the same statement on PostgreSQL (`rollups_write_ctes`, CTEs reading the
INSERT's RETURNING rows; `rollups_add` on SQLite), with one
`INSERT … ON CONFLICT DO UPDATE` that increments the row (so concurrent
writers never lose an update: the conflict takes the row lock and re-reads
the committed value). A batch aggregates its events per key first: rows in
key order (two writers touching the same keys lock them in the same order).

So, at every commit, for every (company, feature, day):
    rollup.quantity          = Σ event.quantity
    rollup.billable_quantity = Σ event.billable_delta
    rollup.events            = count(events)
`rollups_rebuild` (the `backfill_rollups` command) recomputes them from the
events; `rollups_merge` moves a duplicate company's rollups when its events
are re-pointed to the kept company (desk's merge)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from functools import lru_cache
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from ..models import UsageDailyRollup, UsageEvent
from ..rules import db_value

_COLUMNS = ("company_id", "feature_id", "day", "quantity", "billable_quantity", "events", "updated_at")


def _table() -> str:
    return connection.ops.quote_name(UsageDailyRollup._meta.db_table)


def utc_day(moment: datetime) -> date:
    """The UTC day an event at `moment` counts in."""
    return moment.astimezone(UTC).date()


@lru_cache(maxsize=4)
def rollup_upsert_sql(select: str) -> str:
    """INSERT the rows of `select` (columns in `_COLUMNS` order) into the
    rollups, adding to the rows that exist. The table is named, not aliased,
    so that PostgreSQL and SQLite read the same statement."""
    table = _table()
    names = ", ".join(_COLUMNS)
    return (
        f"INSERT INTO {table} ({names}) {select} "
        "ON CONFLICT (company_id, feature_id, day) DO UPDATE SET "
        f"quantity = {table}.quantity + excluded.quantity, "
        f"billable_quantity = {table}.billable_quantity + excluded.billable_quantity, "
        f"events = {table}.events + excluded.events, "
        "updated_at = excluded.updated_at"
    )


# The columns of inserted usage events that the rollup writes read (the
# RETURNING list of the statements that insert events on PostgreSQL).
ROLLUP_EVENT_COLUMNS = ("company_id", "feature_id", "event_time", "quantity", "billable_delta", "created_at")


def rollups_write_ctes(events: str) -> tuple[tuple[str, str], ...]:
    """THE rollup writes of a statement that inserts usage events (PostgreSQL):
    `(name, SQL)` of the CTEs that add the events of the CTE `events`
    (columns `ROLLUP_EVENT_COLUMNS`) to their rollups, in the same statement
    as the INSERT — the single track's one statement (`tracking._track_sql`)
    and every other insert (`events.usage_events_insert`). Each CTE
    aggregates per key and writes keys in order, so a batch touches each row
    once and two writers lock shared keys in the same order. Extend here (a
    new rollup is one more CTE; add its columns to `ROLLUP_EVENT_COLUMNS`);
    `rollups_add` is the same rule for SQLite and must stay in step."""
    day = rollup_day_sql("event_time")
    daily = rollup_upsert_sql(
        f"SELECT company_id, feature_id, {day}, SUM(quantity), SUM(billable_delta), COUNT(*), MAX(created_at) "
        f"FROM {events} GROUP BY company_id, feature_id, {day} ORDER BY company_id, feature_id, {day}"
    )
    return (("rollup_daily", daily),)


def rollup_day_sql(column: str) -> str:
    """SQL for the UTC day of a timestamp column (the rule of `utc_day`)."""
    if connection.vendor == "postgresql":
        return f"(({column}) AT TIME ZONE 'UTC')::date"
    return f"date({column})"  # SQLite keeps datetimes as naive UTC text


def rollups_add(rows: Iterable[dict]) -> None:
    """Add usage event rows (dicts from `events.usage_event_row`, as
    inserted) to their rollups: one statement, one row per key touched. Call
    inside the transaction that inserts the events. The SQLite form of
    `rollups_write_ctes` (PostgreSQL writes rollups in the INSERT's statement)."""
    totals: dict[tuple, list[int]] = {}
    for row in rows:
        key = (row["company_id"], row["feature_id"], utc_day(row["event_time"]))
        total = totals.setdefault(key, [0, 0, 0])
        total[0] += row["quantity"]
        total[1] += row["billable_delta"]
        total[2] += 1
    if not totals:
        return
    now = timezone.now()
    params: list = []
    for (company_id, feature_id, day), (quantity, billable, count) in sorted(totals.items(), key=_key_order):
        params += [
            db_value(UsageDailyRollup, "company", company_id),
            db_value(UsageDailyRollup, "feature", feature_id),
            connection.ops.adapt_datefield_value(day),
            quantity,
            billable,
            count,
            db_value(UsageDailyRollup, "updated_at", now),
        ]
    placeholder = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    values = "VALUES " + ", ".join([placeholder] * len(totals))
    with connection.cursor() as cursor:
        cursor.execute(rollup_upsert_sql(values), params)


def _key_order(item) -> tuple:
    (company_id, feature_id, day), _totals = item
    return (str(company_id), str(feature_id), day)


def rollups_rebuild(*, company_id: UUID | None = None) -> int:
    """Recompute the rollups (of one company, or all) from the usage events:
    the backfill for events written before rollups existed, and the repair
    if they ever disagree. Exact under concurrent tracks: on PostgreSQL the
    rollup table is locked against other writers for the rebuild (a track
    waiting on the lock has not committed its event yet, so the rebuild does
    not see it and the track adds it afterwards). Returns the rows written."""
    from .partitions import events_retained_from

    table = _table()
    where, params = " WHERE 1 = 1", []  # SQLite needs a WHERE before ON CONFLICT
    if company_id is not None:
        where, params = " WHERE company_id = %s", [db_value(UsageDailyRollup, "company", company_id)]
    # Days whose raw events retention dropped keep their rollups as they are.
    rollup_where, event_where = where, where
    rollup_params, event_params = list(params), list(params)
    retained_from = events_retained_from()
    if retained_from is not None:
        rollup_where += " AND day >= %s"
        rollup_params.append(db_value(UsageDailyRollup, "day", utc_day(retained_from)))
        event_where += " AND event_time >= %s"
        event_params.append(db_value(UsageEvent, "event_time", retained_from))
    events = connection.ops.quote_name(UsageEvent._meta.db_table)
    day = rollup_day_sql("event_time")
    select = (
        f"SELECT company_id, feature_id, {day}, SUM(quantity), SUM(billable_delta), COUNT(*), %s "
        f"FROM {events}{event_where} GROUP BY company_id, feature_id, {day}"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(f"DELETE FROM {table}{rollup_where}", rollup_params)
        cursor.execute(
            rollup_upsert_sql(select), [db_value(UsageDailyRollup, "updated_at", timezone.now()), *event_params]
        )
        return cursor.rowcount


def rollups_merge(*, from_company_id: UUID, into_company_id: UUID) -> int:
    """Move a duplicate company's rollups onto the kept company (summed per
    feature and day), for the merge that re-points its usage events. Call in
    the merge's transaction, with the events' move. Returns the rows moved."""
    table = _table()
    source = db_value(UsageDailyRollup, "company", from_company_id)
    target = db_value(UsageDailyRollup, "company", into_company_id)
    select = (
        "SELECT %s, feature_id, day, quantity, billable_quantity, events, %s "
        f"FROM {table} WHERE company_id = %s ORDER BY feature_id, day"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            rollup_upsert_sql(select), [target, db_value(UsageDailyRollup, "updated_at", timezone.now()), source]
        )
        cursor.execute(f"DELETE FROM {table} WHERE company_id = %s", [source])
        return cursor.rowcount
