"""Writing UsageEvent rows: one place decides what an event stores, so a
single track, a batch and a staff correction write the same shape, and one
INSERT path writes them (the hot path of every usage write)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection, models

from ..models import UsageEvent, UsageSource
from ..rules import AccessTerms, FeatureInfo, billable_delta, stripe_status_for


@dataclass(slots=True)
class NewUsageEvent:
    """A usage event about to be inserted: exactly the concrete columns of
    UsageEvent (by attname; tests/metering check they stay in step). A plain
    object, because building 1000 model instances per batch costs more than
    inserting them."""

    id: UUID
    product_id: UUID
    company_id: UUID
    feature_id: UUID
    meter_id: UUID
    event_type: str
    quantity: int
    previous_value: int
    new_value: int
    quantity_limit: int | None
    included_quantity: int
    billable_delta: int
    idempotency_key: str | None
    request_fingerprint: str
    event_time: datetime
    created_at: datetime
    source: str
    performed_by: str
    actor_kind: str
    actor_id: str
    actor_label: str
    adjustment_reason: str
    adjusts_event_id: UUID | None
    metadata: dict[str, Any] = field(default_factory=dict)
    stripe_delivery_status: str = "not_applicable"
    stripe_event_identifier: str = ""
    stripe_delivery_error: str = ""
    stripe_delivery_attempts: int = 0
    stripe_next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None


NEW_EVENT_FIELDS = tuple(f.name for f in fields(NewUsageEvent))


def usage_event_build(
    *,
    product_id: UUID,
    company_id: UUID,
    feature: FeatureInfo,
    terms: AccessTerms,
    meter_id: UUID,
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
) -> NewUsageEvent:
    """An event for a change of a meter from previous_value to new_value, with
    its billable delta and Stripe delivery status decided at write time."""
    event_id = uuid.uuid4()
    delta = billable_delta(previous_value, new_value, terms.included_quantity)
    return NewUsageEvent(
        id=event_id,
        product_id=product_id,
        company_id=company_id,
        feature_id=feature.id,
        meter_id=meter_id,
        event_type=event_type,
        quantity=new_value - previous_value,
        previous_value=previous_value,
        new_value=new_value,
        quantity_limit=terms.quantity_limit,
        included_quantity=terms.included_quantity,
        billable_delta=delta,
        idempotency_key=idempotency_key or None,
        request_fingerprint=request_fingerprint,
        event_time=event_time,
        created_at=now,
        source=source,
        performed_by=performed_by or "",
        actor_kind=getattr(actor, "kind", "") or "",
        actor_id=str(getattr(actor, "id", "") or "")[:64],
        actor_label=(getattr(actor, "label", "") or "")[:200],
        adjustment_reason=adjustment_reason or "",
        adjusts_event_id=adjusts_event_id,
        metadata=metadata or {},
        stripe_delivery_status=stripe_status_for(feature, delta),
        # Stable across retries: Stripe deduplicates meter events by identifier.
        stripe_event_identifier=str(event_id),
    )


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a usage event")


def usage_events_insert(events: list[NewUsageEvent]) -> None:
    """INSERT events in one statement. Raises IntegrityError on a duplicate
    idempotency key (the unique index decides exactly-once)."""
    if not events:
        return
    table = connection.ops.quote_name(UsageEvent._meta.db_table)
    columns = [UsageEvent._meta.get_field(name).column for name in NEW_EVENT_FIELDS]
    column_list = ", ".join(connection.ops.quote_name(column) for column in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One parameter whatever the number of rows: the rows as one JSON
            # document, typed by the table's own row type. Building and parsing
            # a VALUES list of 1000 rows × 30 columns costs more than executing it.
            document = json.dumps(
                [dict(zip(columns, (getattr(event, name) for name in NEW_EVENT_FIELDS), strict=True)) for event in events],
                default=_json_default,
                separators=(",", ":"),
            )
            cursor.execute(
                f"INSERT INTO {table} ({column_list}) SELECT {column_list} "
                f"FROM json_populate_recordset(NULL::{table}, %s::json)",
                [document],
            )
            return
        # Elsewhere (SQLite): multi-row VALUES, chunked under the bound-parameter cap.
        model_fields = [UsageEvent._meta.get_field(name) for name in NEW_EVENT_FIELDS]
        row = "(" + ", ".join(["%s"] * len(model_fields)) + ")"
        rows_per_statement = max(1, connection.features.max_query_params // len(model_fields))
        for start in range(0, len(events), rows_per_statement):
            chunk = events[start : start + rows_per_statement]
            params = [
                model_field.get_db_prep_save(getattr(event, name), connection)
                for event in chunk
                for name, model_field in zip(NEW_EVENT_FIELDS, model_fields, strict=True)
            ]
            cursor.execute(f"INSERT INTO {table} ({column_list}) VALUES " + ", ".join([row] * len(chunk)), params)


def concrete_event_attnames() -> set[str]:
    """The attnames a NewUsageEvent must carry (used by a test to keep them in step)."""
    return {model_field.attname for model_field in UsageEvent._meta.concrete_fields if isinstance(model_field, models.Field)}
