"""Writing UsageEvent rows: `usage_event_row` decides what an event stores
and `usage_events_insert` inserts rows, for a single track, a batch and a
staff correction alike (the single track's one-statement form on PostgreSQL
uses the same INSERT, see `usage_event_insert_sql`).

Rows are plain dicts keyed by the model's column names: building a model
instance per event costs more than inserting it, and a batch has up to 1000.
A column a row leaves out takes the model field's default, so the model is
the only list of columns. (`dimension_values`, set for a feature with
dimensions, is no column: the rollups read it.)"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from django.db import connection

from ..models import UsageEvent, UsageSource
from ..rules import AccessTerms, FeatureInfo, billable_delta, dimension_values, stripe_status_for
from .rollups import rollups_add

EventRow = dict[str, Any]


def usage_event_row(
    *,
    product_id: UUID,
    company_id: UUID,
    feature: FeatureInfo,
    terms: AccessTerms,
    meter_id: UUID | None,
    event_type: str,
    previous_value: int,
    new_value: int,
    event_time: datetime,
    now: datetime,
    idempotency_key: str | None = None,
    request_fingerprint: str = "",
    source: str = UsageSource.API,
    actor=None,
    performed_by: str = "",
    adjustment_reason: str = "",
    adjusts_event_id: UUID | None = None,
    metadata: dict | None = None,
) -> EventRow:
    """The row of an event that moved a meter from previous_value to
    new_value, with its billable delta and Stripe delivery status decided
    here, at write time (`metering.rules`)."""
    event_id = uuid.uuid4()
    delta = billable_delta(previous_value, new_value, terms.included_quantity)
    row = {
        "id": event_id,
        "product_id": product_id,
        "company_id": company_id,
        "feature_id": feature.id,
        "meter_id": meter_id,
        "event_type": event_type,
        "quantity": new_value - previous_value,
        "previous_value": previous_value,
        "new_value": new_value,
        "quantity_limit": terms.quantity_limit,
        "included_quantity": terms.included_quantity,
        "billable_delta": delta,
        "idempotency_key": idempotency_key or None,
        "request_fingerprint": request_fingerprint,
        "event_time": event_time,
        "created_at": now,
        "source": source,
        "performed_by": performed_by or "",
        "actor_kind": getattr(actor, "kind", "") or "",
        "actor_id": str(getattr(actor, "id", "") or "")[:64],
        "actor_label": (getattr(actor, "label", "") or "")[:200],
        "adjustment_reason": adjustment_reason or "",
        "adjusts_event_id": adjusts_event_id,
        "metadata": metadata or {},
        "stripe_delivery_status": stripe_status_for(feature, delta),
        # Stable across retries: Stripe deduplicates meter events by identifier.
        "stripe_event_identifier": str(event_id),
    }
    if feature.dimensions:
        # Not a column: what `rollups.rollups_add` (and the single track's
        # statement) count the event under, per dimension of the feature.
        row["dimension_values"] = dimension_values(feature, metadata)
    return row


def usage_event_row_apply(row: EventRow, *, meter_id, new_value: int, feature: FeatureInfo) -> EventRow:
    """Fill in what a counter UPDATE decided (the meter, the values it moved
    between) and what follows from it, by the same rules as `usage_event_row`."""
    row["meter_id"] = UsageEvent._meta.pk.to_python(meter_id)
    row["previous_value"] = new_value - row["quantity"]
    row["new_value"] = new_value
    row["billable_delta"] = billable_delta(row["previous_value"], new_value, row["included_quantity"])
    row["stripe_delivery_status"] = stripe_status_for(feature, row["billable_delta"])
    return row


@lru_cache(maxsize=1)
def _columns() -> tuple:
    """(column, field, default) of every concrete column, in model order."""
    columns = []
    for model_field in UsageEvent._meta.concrete_fields:
        # No default: NULL (the column is nullable or every row sets it).
        default = model_field.default if model_field.has_default() else None
        columns.append((model_field.column, model_field, default))
    return tuple(columns)


def _complete(row: EventRow) -> EventRow:
    for column, _field, default in _columns():
        if column not in row:
            row[column] = default() if callable(default) else default
    return row


def usage_event_rows_document(rows: list[EventRow]) -> str:
    """The rows as one JSON document, the parameter of `usage_event_insert_sql`."""
    # default=str (a builtin, no Python frame per value) writes UUIDs and
    # datetimes as PostgreSQL reads them: '…-…' and '2026-11-29 10:00:00+00:00'.
    return json.dumps([_complete(row) for row in rows], default=str, separators=(",", ":"))


@lru_cache(maxsize=8)
def usage_event_insert_sql(*, computed: tuple[tuple[str, str], ...] = (), extra_from: str = "") -> str:
    """The INSERT of usage events on PostgreSQL: one parameter `%(rows)s`
    whatever the number of rows (the rows as one JSON document, typed by the
    table's own row type: building and parsing a VALUES list of 1000 rows ×
    30 columns costs more than executing it). `computed` replaces columns by
    SQL expressions over `r` (the row) and `extra_from` (e.g. the row an
    UPDATE returned)."""
    table = connection.ops.quote_name(UsageEvent._meta.db_table)
    overrides = dict(computed)
    columns = [column for column, _field, _default in _columns()]
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    values = ", ".join(overrides.get(column, f"r.{connection.ops.quote_name(column)}") for column in columns)
    sources = f"json_populate_recordset(NULL::{table}, %(rows)s::json) AS r" + (f", {extra_from}" if extra_from else "")
    return f"INSERT INTO {table} ({names}) SELECT {values} FROM {sources}"


def usage_events_insert(rows: list[EventRow]) -> None:
    """INSERT events (rows from `usage_event_row`) in one statement, and add
    them to their daily rollups (`rollups.rollups_add`, one more statement):
    call inside a transaction. Raises IntegrityError on a duplicate
    idempotency key (the unique index decides exactly-once)."""
    if not rows:
        return
    _events_insert(rows)
    rollups_add(rows)


def _events_insert(rows: list[EventRow]) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(usage_event_insert_sql(), {"rows": usage_event_rows_document(rows)})
            return
        # SQLite (the embedded demo database): multi-row VALUES, chunked under
        # the bound-parameter cap, each value as the field stores it.
        table = connection.ops.quote_name(UsageEvent._meta.db_table)
        columns = _columns()
        names = ", ".join(connection.ops.quote_name(column) for column, _field, _default in columns)
        placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
        rows_per_statement = max(1, connection.features.max_query_params // len(columns))
        for start in range(0, len(rows), rows_per_statement):
            chunk = [_complete(row) for row in rows[start : start + rows_per_statement]]
            params = [
                model_field.get_db_prep_save(row[column], connection)
                for row in chunk
                for column, model_field, _default in columns
            ]
            cursor.execute(f"INSERT INTO {table} ({names}) VALUES " + ", ".join([placeholder] * len(chunk)), params)
