"""Daily usage rollups (SPEC §5): per (company, feature, UTC day of the
event's `event_time`) the summed quantity, billable quantity (the events'
`billable_delta`) and number of events.

Exactness: every usage event is written through the one insert path
(`events.usage_events_insert`, or the single track's one statement on
PostgreSQL, `tracking._track_sql`), and both add the event to its rollup in
the same transaction, with one `INSERT … ON CONFLICT DO UPDATE` that
increments the row (so concurrent writers never lose an update: the conflict
takes the row lock and re-reads the committed value). A batch aggregates its
events per key first: one statement for the whole batch, rows in key order
(two writers touching the same keys lock them in the same order).

So, at every commit, for every (company, feature, day):
    rollup.quantity          = Σ event.quantity
    rollup.billable_quantity = Σ event.billable_delta
    rollup.events            = count(events)
The same statement (single track) or the same transaction (every other
write) adds the event to its hourly rollup (`UsageHourlyRollup`, for the
last 35 days) and, for a feature with `dimensions`, to one
`UsageDimensionRollup` row per dimension (its UTC hour and the event's value
of that metadata key), with the same increment-on-conflict upsert. So at
every commit, for every hour and every dimension:
    Σ hourly rows of a day                 = the day's rollup (within 35 days)
    Σ dimension rows of an hour (any value) = the hour's rollup
`rollups_compact` (job `metering.compact_rollups`) keeps these sums while it
prunes hours older than 35 days, merges a dimension's older hours into days
and folds all but a day's 100 most frequent values into `other` (see
`dimension_rows_fold` for which 100 and why that is exact under concurrency).

`rollups_rebuild` (the `backfill_rollups` command) recomputes them from the
events; `rollups_merge` moves a duplicate company's rollups when its events
are re-pointed to the kept company (desk's merge)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from ..models import UsageDailyRollup, UsageDimensionRollup, UsageEvent, UsageHourlyRollup
from ..rules import (
    OTHER_VALUE,
    TOP_VALUES_PER_DAY,
    db_value,
    dimension_value,
    dimension_values_kept,
    hourly_cutoff,
    utc_hour,
)

_COLUMNS = ("company_id", "feature_id", "day", "quantity", "billable_quantity", "events", "updated_at")
_HOURLY_COLUMNS = ("company_id", "feature_id", "hour", "quantity", "billable_quantity", "events", "updated_at")
_DIMENSION_COLUMNS = (
    "company_id", "feature_id", "dimension", "period_start", "value",
    "quantity", "billable_quantity", "events", "updated_at",
)
_KEYS = {
    UsageDailyRollup: ("company_id", "feature_id", "day"),
    UsageHourlyRollup: ("company_id", "feature_id", "hour"),
    UsageDimensionRollup: ("company_id", "feature_id", "dimension", "period_start", "value"),
}
_INSERT_COLUMNS = {UsageDailyRollup: _COLUMNS, UsageHourlyRollup: _HOURLY_COLUMNS, UsageDimensionRollup: _DIMENSION_COLUMNS}


def _table(model=UsageDailyRollup) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def utc_day(moment: datetime) -> date:
    """The UTC day an event at `moment` counts in."""
    return moment.astimezone(UTC).date()


def dimension_values_document(pairs: list[tuple[str, str]]) -> str:
    """`dimension_values` as the JSON parameter of the single track's statement."""
    return json.dumps([{"dimension": key, "value": value} for key, value in pairs], separators=(",", ":"))


@lru_cache(maxsize=16)
def _upsert_sql(model, select: str) -> str:
    table = _table(model)
    names = ", ".join(_INSERT_COLUMNS[model])
    keys = ", ".join(_KEYS[model])
    return (
        f"INSERT INTO {table} ({names}) {select} "
        f"ON CONFLICT ({keys}) DO UPDATE SET "
        f"quantity = {table}.quantity + excluded.quantity, "
        f"billable_quantity = {table}.billable_quantity + excluded.billable_quantity, "
        f"events = {table}.events + excluded.events, "
        "updated_at = excluded.updated_at"
    )


def rollup_upsert_sql(select: str) -> str:
    """INSERT the rows of `select` (columns in `_COLUMNS` order) into the
    rollups, adding to the rows that exist. The table is named, not aliased,
    so that PostgreSQL and SQLite read the same statement."""
    return _upsert_sql(UsageDailyRollup, select)


def hourly_upsert_sql(select: str) -> str:
    """`rollup_upsert_sql` for the hourly rollups (columns `_HOURLY_COLUMNS`)."""
    return _upsert_sql(UsageHourlyRollup, select)


def dimension_upsert_sql(select: str) -> str:
    """`rollup_upsert_sql` for the dimension rollups (columns `_DIMENSION_COLUMNS`)."""
    return _upsert_sql(UsageDimensionRollup, select)


def rollup_day_sql(column: str) -> str:
    """SQL for the UTC day of a timestamp column (the rule of `utc_day`)."""
    if connection.vendor == "postgresql":
        return f"(({column}) AT TIME ZONE 'UTC')::date"
    return f"date({column})"  # SQLite keeps datetimes as naive UTC text


def rollups_add(rows: Iterable[dict]) -> None:
    """Add usage event rows (dicts from `events.usage_event_row`, as
    inserted, with their `dimension_values`) to their daily, hourly and
    dimension rollups: one statement per table (daily, hourly, dimension:
    every writer locks in that order), one row per key touched, rows in key
    order. Call inside the transaction that inserts the events."""
    daily: dict[tuple, list[int]] = {}
    hourly: dict[tuple, list[int]] = {}
    by_value: dict[tuple, list[int]] = {}
    for row in rows:
        company_id, feature_id, event_time = row["company_id"], row["feature_id"], row["event_time"]
        quantity, billable = row["quantity"], row["billable_delta"]
        hour = utc_hour(event_time)
        _accumulate(daily, (company_id, feature_id, utc_day(event_time)), quantity, billable)
        _accumulate(hourly, (company_id, feature_id, hour), quantity, billable)
        for dimension, value in row.get("dimension_values") or ():
            _accumulate(by_value, (company_id, feature_id, dimension, hour, value), quantity, billable)
    totals_add(UsageDailyRollup, daily)
    totals_add(UsageHourlyRollup, hourly)
    totals_add(UsageDimensionRollup, by_value)


def _accumulate(totals: dict, key: tuple, quantity: int, billable: int, events: int = 1) -> None:
    total = totals.setdefault(key, [0, 0, 0])
    total[0] += quantity
    total[1] += billable
    total[2] += events


def _key_order(item) -> tuple:
    key, _totals = item
    return tuple(str(part) if isinstance(part, UUID) else part for part in key)


def totals_add(model, totals: Mapping[tuple, list[int]], *, now: datetime | None = None) -> None:
    """Add {key: [quantity, billable, events]} to `model`'s rollup rows (key
    in `_KEYS[model]` order): one upsert, rows in key order, chunked under
    SQLite's bound-parameter cap."""
    if not totals:
        return
    now = now or timezone.now()
    columns = _INSERT_COLUMNS[model]
    updated_at = db_value(model, "updated_at", now)
    rows = []
    for key, (quantity, billable, count) in sorted(totals.items(), key=_key_order):
        values = [_db_key(model, name, part) for name, part in zip(_KEYS[model], key, strict=True)]
        rows.append([*values, quantity, billable, count, updated_at])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The rows as one JSON parameter: a short, fixed statement text
            # (psycopg and PostgreSQL parse a VALUES list of hundreds of
            # parameters on every call, which cost more than the upsert).
            document = json.dumps([dict(zip(columns, row)) for row in rows], default=str, separators=(",", ":"))
            select = f"SELECT {', '.join('r.' + column for column in columns)} FROM " \
                     f"json_populate_recordset(NULL::{_table(model)}, %s::json) AS r"
            cursor.execute(_upsert_sql(model, select), [document])
            return
        placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
        per_statement = max(1, (connection.features.max_query_params or 65535) // len(columns))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            values = "VALUES " + ", ".join([placeholder] * len(chunk))
            cursor.execute(_upsert_sql(model, values), [value for row in chunk for value in row])


def _db_key(model, column: str, value: Any) -> Any:
    if column == "day":
        return connection.ops.adapt_datefield_value(value)
    if column in ("dimension", "value"):
        return value
    return db_value(model, column.removesuffix("_id"), value)


def rollup_hour_sql(column: str) -> str:
    """SQL for the UTC hour of a timestamp column (the rule of `utc_hour`)."""
    if connection.vendor == "postgresql":
        return f"(date_trunc('hour', ({column}) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
    return f"strftime('%%Y-%%m-%%d %%H:00:00', {column})"


def _is_midnight_sql(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"(({column}) AT TIME ZONE 'UTC')::time = '00:00'"
    return f"time({column}) = '00:00:00'"


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def rollups_rebuild(*, company_id: UUID | None = None) -> int:
    """Recompute the rollups (of one company, or all) from the usage events:
    the backfill for events written before rollups existed, and the repair
    if they ever disagree. Exact under concurrent tracks: on PostgreSQL the
    rollup tables are locked against other writers for the rebuild (a track
    waiting on the lock has not committed its event yet, so the rebuild does
    not see it and the track adds it afterwards). Days (hours) whose raw
    events retention dropped keep their rollups as they are. Returns the
    daily rows written."""
    from .partitions import events_retained_from

    where, params = " WHERE 1 = 1", []  # SQLite needs a WHERE before ON CONFLICT
    if company_id is not None:
        where, params = " WHERE company_id = %s", [db_value(UsageDailyRollup, "company", company_id)]
    now = timezone.now()
    retained_from = events_retained_from()
    hours_from = hourly_cutoff(now) if retained_from is None else max(hourly_cutoff(now), utc_hour(retained_from))
    events = connection.ops.quote_name(UsageEvent._meta.db_table)
    updated_at = db_value(UsageDailyRollup, "updated_at", now)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            tables = ", ".join(_table(model) for model in (UsageDailyRollup, UsageHourlyRollup, UsageDimensionRollup))
            cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")
        # Daily totals.
        rollup_where, event_where = where, where
        rollup_params, event_params = list(params), list(params)
        if retained_from is not None:
            rollup_where += " AND day >= %s"
            rollup_params.append(db_value(UsageDailyRollup, "day", utc_day(retained_from)))
            event_where += " AND event_time >= %s"
            event_params.append(db_value(UsageEvent, "event_time", retained_from))
        day = rollup_day_sql("event_time")
        cursor.execute(f"DELETE FROM {_table()}{rollup_where}", rollup_params)
        cursor.execute(
            rollup_upsert_sql(
                f"SELECT company_id, feature_id, {day}, SUM(quantity), SUM(billable_delta), COUNT(*), %s "
                f"FROM {events}{event_where} GROUP BY company_id, feature_id, {day}"
            ),
            [updated_at, *event_params],
        )
        written = cursor.rowcount
        # Hourly totals of the last 35 days.
        hour = rollup_hour_sql("event_time")
        cursor.execute(
            f"DELETE FROM {_table(UsageHourlyRollup)}{where} AND hour >= %s",
            [*params, db_value(UsageHourlyRollup, "hour", hours_from)],
        )
        cursor.execute(
            hourly_upsert_sql(
                f"SELECT company_id, feature_id, {hour}, SUM(quantity), SUM(billable_delta), COUNT(*), %s "
                f"FROM {events}{where} AND event_time >= %s GROUP BY company_id, feature_id, {hour}"
            ),
            [updated_at, *params, db_value(UsageEvent, "event_time", hours_from)],
        )
        # Dimension totals: the value rule is Python's (`rules.dimension_value`).
        dimension_where = where
        dimension_params = list(params)
        if retained_from is not None:
            dimension_where += " AND period_start >= %s"
            dimension_params.append(db_value(UsageDimensionRollup, "period_start", _midnight(utc_day(retained_from))))
        cursor.execute(f"DELETE FROM {_table(UsageDimensionRollup)}{dimension_where}", dimension_params)
        _dimensions_rebuild(company_id=company_id, retained_from=retained_from, now=now)
    rollups_compact(now=now, since=None)
    return written


def _dimensions_rebuild(*, company_id: UUID | None, retained_from: datetime | None, now: datetime) -> None:
    from entitlements.models import Feature

    dimensions = {
        feature_id: tuple(sorted(keys))
        for feature_id, keys in Feature.objects.exclude(dimensions=[]).values_list("id", "dimensions")
        if keys
    }
    if not dimensions:
        return
    events = UsageEvent.objects.filter(feature_id__in=list(dimensions))
    if company_id is not None:
        events = events.filter(company_id=company_id)
    if retained_from is not None:
        events = events.filter(event_time__gte=retained_from)
    totals: dict[tuple, list[int]] = {}
    for company, feature, event_time, quantity, billable, metadata in events.values_list(
        "company_id", "feature_id", "event_time", "quantity", "billable_delta", "metadata"
    ).iterator(chunk_size=5000):
        hour = utc_hour(event_time)
        for key in dimensions[feature]:
            value = dimension_value(metadata, key)
            _accumulate(totals, (company, feature, key, hour, value), quantity, billable)
    totals_add(UsageDimensionRollup, totals, now=now)


def rollups_merge(*, from_company_id: UUID, into_company_id: UUID) -> int:
    """Move a duplicate company's rollups (daily, hourly, dimension) onto the
    kept company (summed per key), for the merge that re-points its usage
    events. Call in the merge's transaction, with the events' move. Returns
    the daily rows moved. (A day may then hold more than 100 values of a
    dimension until the next `rollups_compact` folds it.)"""
    source = db_value(UsageDailyRollup, "company", from_company_id)
    target = db_value(UsageDailyRollup, "company", into_company_id)
    moved = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for model in (UsageDailyRollup, UsageHourlyRollup, UsageDimensionRollup):
            table = _table(model)
            rest = ", ".join(_KEYS[model][1:])
            select = (
                f"SELECT %s, {rest}, quantity, billable_quantity, events, %s "
                f"FROM {table} WHERE company_id = %s ORDER BY {rest}"
            )
            cursor.execute(_upsert_sql(model, select), [target, db_value(model, "updated_at", timezone.now()), source])
            cursor.execute(f"DELETE FROM {table} WHERE company_id = %s", [source])
            if model is UsageDailyRollup:
                moved = cursor.rowcount
    return moved


# --- Retention, compaction and the top-100 fold -----------------------------------------


@dataclass
class CompactResult:
    hours_pruned: int = 0
    groups_folded: int = 0
    rows_moved: int = 0


def rollups_compact(*, now: datetime | None = None, since: date | None | bool = True) -> CompactResult:
    """The daily upkeep of the rollups (job `metering.compact_rollups`):
    prune hourly totals older than 35 days (their days stay in the daily
    rollups); for every company × feature × dimension × UTC day before
    today, fold all values but the 100 most frequent into `other` and, for
    days older than 35 days, merge the hours into one row per day
    (`dimension_rows_fold`). Every Σ of the module docstring holds before and
    after. `since`: the oldest day to look at (default: a week before the
    hourly window, so that a few missed runs are caught up; None: all)."""
    now = now or timezone.now()
    cutoff = hourly_cutoff(now)
    compact_before = utc_day(cutoff)  # days before it have no hour in the window
    if since is True:
        since = compact_before - timedelta(days=7)
    result = CompactResult()
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {_table(UsageHourlyRollup)} WHERE hour < %s", [db_value(UsageHourlyRollup, "hour", cutoff)]
        )
        result.hours_pruned = cursor.rowcount
        day = rollup_day_sql("period_start")
        where, params = "period_start < %s", [db_value(UsageDimensionRollup, "period_start", _midnight(utc_day(now)))]
        if since is not None:
            where += " AND period_start >= %s"
            params.append(db_value(UsageDimensionRollup, "period_start", _midnight(since)))
        # Groups with work: more than 100 values, or hours of a day outside the window.
        cursor.execute(
            f"SELECT company_id, feature_id, dimension, {day} FROM {_table(UsageDimensionRollup)} "
            f"WHERE {where} GROUP BY company_id, feature_id, dimension, {day} "
            f"HAVING COUNT(DISTINCT CASE WHEN value <> %s THEN value END) > %s "
            f"OR ({day} < %s AND SUM(CASE WHEN {_is_midnight_sql('period_start')} THEN 0 ELSE 1 END) > 0) "
            "ORDER BY 1, 2, 3, 4",
            [*params, OTHER_VALUE, TOP_VALUES_PER_DAY, connection.ops.adapt_datefield_value(compact_before)],
        )
        groups = cursor.fetchall()
    for company_id, feature_id, dimension, group_day in groups:
        if isinstance(group_day, str):
            group_day = date.fromisoformat(group_day)
        moved = dimension_rows_fold(
            company_id=company_id, feature_id=feature_id, dimension=dimension, day=group_day,
            to_day=group_day < compact_before,
        )
        result.groups_folded += 1
        result.rows_moved += moved
    return result


def dimension_rows_fold(*, company_id, feature_id, dimension: str, day: date, to_day: bool) -> int:
    """Fold one company × feature × dimension × UTC day: values outside the
    day's 100 most frequent (`rules.dimension_values_kept`, over the day's
    rows) move into `other` in the same period, and with `to_day` every
    hour moves into the day's midnight row. Returns the rows moved.

    Exact under concurrency: the day's rows are locked (`FOR UPDATE`, in
    the key order writers lock in) and their totals read and moved in one
    transaction, so every Σ holds at each commit. A writer adding to a row
    this deletes waits for the lock and then inserts a fresh row (INSERT …
    ON CONFLICT retries when the conflicting row is gone); a value first
    seen while this runs gets a row this did not lock. Either way its totals
    count, and such a day is folded again by the next run, which ranks the
    rows as they are then: the values kept are the 100 most frequent of the
    day's rows at the time of the fold, and a value once folded stays in
    `other` (a late event of it starts a new row that competes again)."""
    table = _table(UsageDimensionRollup)
    start = _midnight(day)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, period_start, value, quantity, billable_quantity, events FROM {table} "
            "WHERE company_id = %s AND feature_id = %s AND dimension = %s AND period_start >= %s AND period_start < %s "
            "ORDER BY period_start, value" + (" FOR UPDATE" if connection.features.has_select_for_update else ""),
            [
                company_id, feature_id, dimension,
                db_value(UsageDimensionRollup, "period_start", start),
                db_value(UsageDimensionRollup, "period_start", start + timedelta(days=1)),
            ],
        )
        rows = cursor.fetchall()
        per_value: dict[str, tuple[int, int]] = {}
        for _id, _start, value, quantity, _billable, events in rows:
            seen = per_value.get(value, (0, 0))
            per_value[value] = (seen[0] + events, seen[1] + quantity)
        kept = dimension_values_kept(per_value)
        moved_ids, targets = [], {}
        for row_id, period_start, value, quantity, billable, events in rows:
            target_start = start if to_day else _aware(period_start)
            target_value = value if value in kept or value == OTHER_VALUE else OTHER_VALUE
            if (target_start, target_value) == (_aware(period_start), value):
                continue
            moved_ids.append(row_id)
            key = (company_id, feature_id, dimension, target_start, target_value)
            _accumulate(targets, key, quantity, billable, events)
        if moved_ids:
            for chunk_start in range(0, len(moved_ids), 500):
                chunk = moved_ids[chunk_start : chunk_start + 500]
                cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk)
            # The targets are rows this kept (locked) or new ones: adding to them
            # never waits on a row a writer holds before one of ours.
            totals_add(UsageDimensionRollup, targets)
    return len(moved_ids)


def _aware(value) -> datetime:
    """A period_start from a raw row: aware (PostgreSQL) or naive UTC text (SQLite)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
