"""Tracking usage: single events and batches, exactly once, within hard limits.

Invariants (SPEC §5), under any concurrency:
- exactly once per idempotency key and product: the unique index on
  (idempotency_key, product) decides; whoever loses the insert rolls its whole
  transaction back (including its counter update) and answers with the stored
  result of the winner;
- a meter never passes its quantity limit through a track, and never loses an
  update: the counter only moves by an UPDATE that checks the limit against
  the row's own current value while holding its row lock (single track; on
  PostgreSQL one statement that also inserts the event), or under
  SELECT … FOR UPDATE (batch);
- an event and the counter change it describes commit together or not at all.

Extending the track: `_after_counter_update` is the one place for work that
must commit with the tracked usage (credit debits, threshold notifications).
It runs in the track's transaction right after the counter UPDATE and the
event INSERT, for single tracks and batches alike; `_hooks_apply` says when a
single track can have such work (otherwise it runs as one autocommitted
statement) and must be kept in step with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import lru_cache
from datetime import datetime
from typing import Literal
from uuid import UUID

from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from companies.selectors import (
    companies_visible_bulk,
    company_merged_conflict,
    company_not_found,
    company_tombstones_bulk,
)
from companies.services import account_activity_touch
from config.api.serializers import MAX_BIGINT
from config.db import prepared_cursor
from config.errors import ApplicationError, BadRequest
from credits.services import UsageCreditBudget, usage_charge

from ..models import UsageEventType, UsageHourlyRollup, UsageMeter, UsageSource
from ..periods import Period, period_for
from ..rules import (
    NO_ACCESS,
    AccessTerms,
    FeatureInfo,
    UsageResult,
    access_refused,
    check_event_time,
    check_quantity,
    db_value,
    idempotency_conflict,
    limit_exceeded,
    not_metered,
    overflow,
    billable_delta,
    billable_delta_sql,
    result_from_row,
    stored_result,
    stored_rows,
    stripe_status_sql,
    track_fingerprint,
    unknown_feature,
)
from ..selectors import access_terms_bulk, features_by_code, usage_target_get
from .alerts import usage_alerts_emit
from .events import (
    EventRow,
    usage_event_insert_sql,
    usage_event_row,
    usage_event_row_apply,
    usage_event_rows_document,
    usage_events_insert,
)
from .meters import meters_get_or_create
from .rollups import (
    dimension_upsert_sql,
    dimension_values_document,
    hourly_upsert_sql,
    rollup_day_sql,
    rollup_upsert_sql,
    utc_hour,
)

MAX_BATCH_SIZE = 1000
TRACK_ATTEMPTS = 5
_NO_METER = object()
_RETRY = object()
# A batch that loses an idempotency-key race (or a deadlock) to a concurrent
# request is recomputed from scratch; the retry sees the winner's rows. Every
# lost race means another writer committed, so the retries are bounded by the
# number of concurrent writers sharing keys with the batch, which can exceed a
# handful (a batch retried by its client while single tracks reuse its keys:
# tests/metering/test_concurrency.py lost all 5 attempts once under load).
BATCH_ATTEMPTS = 20


def usage_track(
    *,
    product_id: UUID,
    feature_code: str,
    quantity: int = 1,
    company_id: UUID | None = None,
    external_org_id: str | None = None,
    idempotency_key: str | None = None,
    timestamp: datetime | None = None,
    metadata: dict | None = None,
    actor=None,
    source: str = UsageSource.API,
) -> UsageResult:
    """Add `quantity` (≥ 1) to the company's meter for the period containing
    `timestamp` (default now). 412 past the limit or without active access,
    404 for an unknown company/feature; a repeated idempotency key returns the
    original result (`replayed=True`) or 409 if the body differs."""
    check_quantity(quantity, field="quantity")
    now = timezone.now()
    event_time = check_event_time(timestamp=timestamp, now=now)
    company_id, feature, terms = usage_target_get(
        product_id=product_id, feature_code=feature_code, company_id=company_id, external_org_id=external_org_id
    )
    request_fingerprint = track_fingerprint(
        company_id=company_id, feature_code=feature.code, quantity=quantity, timestamp=timestamp, metadata=metadata
    )
    try:
        refusal = terms.refusal(now)
        if refusal:
            raise access_refused(reason=refusal, feature_code=feature.code)
        period = period_for(feature.reset_period, event_time, company_id=company_id)
        for _ in range(TRACK_ATTEMPTS):
            try:
                result = _track_apply(
                    product_id=product_id,
                    company_id=company_id,
                    feature=feature,
                    terms=terms,
                    period=period,
                    quantity=quantity,
                    idempotency_key=idempotency_key,
                    request_fingerprint=request_fingerprint,
                    event_time=event_time,
                    now=now,
                    metadata=metadata,
                    actor=actor,
                    source=source,
                )
            except IntegrityError:
                # A concurrent request with the same key committed first; our
                # counter update was rolled back with the failed insert.
                stored = stored_result(
                    product_id=product_id, idempotency_key=idempotency_key, request_fingerprint=request_fingerprint
                )
                if stored is None:
                    raise
                return stored
            if result is _NO_METER:
                meters_get_or_create(keys={(company_id, feature.id, period)}, now=now)
            elif result is not _RETRY:
                if not result.replayed:
                    account_activity_touch(company_id=company_id, product_id=product_id, at=now)
                return result
        raise RuntimeError("usage track did not settle")  # pragma: no cover
    except ApplicationError:
        # A retry of a call that once succeeded answers with that success even
        # if it would be refused now (limit reached since, access revoked).
        stored = stored_result(
            product_id=product_id, idempotency_key=idempotency_key, request_fingerprint=request_fingerprint
        )
        if stored is not None:
            return stored
        raise


def _track_apply(
    *,
    product_id: UUID,
    company_id: UUID,
    feature: FeatureInfo,
    terms: AccessTerms,
    period: Period,
    quantity: int,
    idempotency_key: str | None,
    request_fingerprint: str,
    event_time: datetime,
    now: datetime,
    metadata: dict | None,
    actor,
    source: str,
) -> UsageResult | object:
    """Apply one increment: the conditional counter UPDATE and the event
    INSERT, then `_after_counter_update`, in one transaction. _NO_METER when
    the period has no meter yet, _RETRY when the UPDATE missed for a reason
    that is gone now (nothing written either way)."""
    # Everything but the values that depend on the updated row is known now.
    row = usage_event_row(
        product_id=product_id,
        company_id=company_id,
        feature=feature,
        terms=terms,
        meter_id=None,
        event_type=UsageEventType.INCREMENT,
        previous_value=0,
        new_value=quantity,
        event_time=event_time,
        now=now,
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
        source=source,
        actor=actor,
        metadata=metadata,
    )
    # The WHERE clause is the whole limit rule: the row lock taken by UPDATE
    # serialises concurrent tracks on one meter, and each re-evaluates
    # `value + quantity <= limit` against the value the previous one committed
    # (READ COMMITTED re-checks the predicate on the updated row), so no two
    # tracks can both squeeze into the last units and no increment is lost.
    update = _COUNTER_UPDATE + (_LIMIT_CONDITION if terms.quantity_limit is not None else "")
    params = {
        "quantity": quantity,
        "now": db_value(UsageMeter, "updated_at", now),
        "company": db_value(UsageMeter, "company", company_id),
        "feature": db_value(UsageMeter, "feature", feature.id),
        "start": db_value(UsageMeter, "period_start", period.start),
        "ceiling": MAX_BIGINT - quantity,
        "limit": terms.quantity_limit,
    }
    existing = None
    one_statement = connection.vendor == "postgresql"
    with_hooks = _hooks_apply(feature=feature, terms=terms)
    # A transaction when hooks must commit with the event (or the database
    # needs two statements); a savepoint inside a caller's transaction, so
    # that a duplicate-key failure does not abort it. Otherwise the one
    # statement is its own transaction: no BEGIN/COMMIT round trips, and the
    # meter row is locked only while PostgreSQL runs it.
    atomic = with_hooks or not one_statement or connection.in_atomic_block
    with transaction.atomic() if atomic else nullcontext(), prepared_cursor() as cursor:
        if one_statement:
            # UPDATE … RETURNING feeding the INSERT in a CTE.
            params.update(
                rows=usage_event_rows_document([row]),
                to_stripe=bool(feature.stripe_meter_event_name),
                hour=db_value(UsageHourlyRollup, "hour", utc_hour(event_time)),
            )
            if feature.dimensions:
                params["dimensions"] = dimension_values_document(row["dimension_values"])
            cursor.execute(_track_sql(update.format(table=_meter_table()), bool(feature.dimensions)), params)
            applied = cursor.fetchone()
            if applied is not None:
                usage_event_row_apply(row, meter_id=applied[0], new_value=applied[1], feature=feature)
        else:
            cursor.execute(update.format(table=_meter_table()) + " RETURNING id, value", params)
            applied = cursor.fetchone()
            if applied is not None:
                usage_event_row_apply(row, meter_id=applied[0], new_value=applied[1], feature=feature)
                usage_events_insert([row])
        if applied is None:
            cursor.execute(_METER_VALUE.format(table=_meter_table()), params)
            existing = cursor.fetchone()
        elif with_hooks:
            _after_counter_update(
                product_id=product_id, tracked=[TrackedUsage(row=row, feature=feature, terms=terms)], now=now
            )
    if applied is None:
        return _why_not_applied(existing, quantity=quantity, terms=terms, feature=feature)
    return result_from_row(row, feature_code=feature.code)


@dataclass(frozen=True)
class TrackedUsage:
    """One tracked event as `_after_counter_update` sees it: the row as
    inserted (id, meter_id, previous_value, new_value, billable_delta, …),
    its feature and the access terms it was judged by."""

    row: EventRow
    feature: FeatureInfo
    terms: AccessTerms


def _after_counter_update(*, product_id: UUID, tracked: list[TrackedUsage], now: datetime) -> None:
    """THE place for work that must commit together with tracked usage (a
    credit debit, a threshold-crossing notification written to an outbox).
    Runs inside the track's transaction, after the counter UPDATE and the
    event INSERT, once per single track (when `_hooks_apply` says it can have
    work: keep that predicate in step with what is added here) and once per
    batch with every event it counted; raising here rolls back those events
    and counters. (To refuse
    single events of a batch on their own, judge them in `_batch_apply`'s
    per-event loop, where the limit is checked.)"""
    # Usage alerts, in meter and value order, so that a batch crossing a
    # threshold several times notifies the first event that crossed it.
    for item in sorted(tracked, key=lambda t: (t.row["meter_id"], t.row["new_value"])):
        usage_alerts_emit(event=item.row, feature=item.feature, now=now)
    # Credit-priced features: each event's billable units × creditCost, as a
    # debit with jobId = the event id (a batch admitted them in `_batch_apply`).
    for item in tracked:
        cost = _credit_cost(item.row["billable_delta"], item.feature)
        if cost:
            usage_charge(
                product_id=product_id, company_id=item.row["company_id"], amount=cost,
                event_id=item.row["id"], feature_code=item.feature.code,
            )


def _credit_cost(billable: int, feature: FeatureInfo) -> int:
    return billable * feature.credit_cost if feature.credit_cost and billable > 0 else 0


def _hooks_apply(*, feature: FeatureInfo, terms: AccessTerms) -> bool:
    """Whether `_after_counter_update` can have work for an event of this
    feature under these terms: usage alerts need a limit, credit charges a
    credit cost. A single track for which it cannot skips the transaction
    (see `_track_apply`). Keep this in step with `_after_counter_update`."""
    return terms.quantity_limit is not None or bool(feature.credit_cost)


def _meter_table() -> str:
    return connection.ops.quote_name(UsageMeter._meta.db_table)


_METER_WHERE = "company_id = %(company)s AND feature_id = %(feature)s AND period_start = %(start)s"
_COUNTER_UPDATE = (
    "UPDATE {table} SET value = value + %(quantity)s, updated_at = %(now)s "
    f"WHERE {_METER_WHERE} AND value <= %(ceiling)s"
)
_LIMIT_CONDITION = " AND value + %(quantity)s <= %(limit)s"
_METER_VALUE = f"SELECT value FROM {{table}} WHERE {_METER_WHERE}"


@lru_cache(maxsize=8)
def _track_sql(update: str, with_dimensions: bool = False) -> str:
    """The single track on PostgreSQL: the counter UPDATE feeding the one
    usage event INSERT (`usage_event_insert_sql`), whose columns that depend
    on the updated row are the SQL forms of `metering.rules`, feeding the
    event's daily and hourly rollup upserts and, for a feature with
    dimensions, one dimension rollup row per dimension (`rollups`; in that
    order, the order every writer locks them in): still one statement."""
    previous, new = "u.value - r.quantity", "u.value"
    delta = billable_delta_sql(previous, new, "r.included_quantity")
    computed = (
        ("meter_id", "u.id"),
        ("previous_value", previous),
        ("new_value", new),
        ("billable_delta", delta),
        ("stripe_delivery_status", stripe_status_sql("%(to_stripe)s", delta)),
    )
    insert = usage_event_insert_sql(computed=computed, extra_from="u")
    # The event's daily rollup, in the same statement (`rollups`).
    rollup = rollup_upsert_sql(
        f"SELECT company_id, feature_id, {rollup_day_sql('event_time')}, quantity, billable_delta, 1, created_at "
        "FROM e"
    )
    hourly = hourly_upsert_sql("SELECT company_id, feature_id, %(hour)s, quantity, billable_delta, 1, created_at FROM e")
    dimensions = ""
    if with_dimensions:
        by_value = dimension_upsert_sql(
            "SELECT e.company_id, e.feature_id, d.dimension, %(hour)s, d.value, e.quantity, e.billable_delta, 1, "
            "e.created_at FROM e, json_to_recordset(%(dimensions)s::json) AS d(dimension text, value text)"
        )
        dimensions = f", rd AS ({by_value})"
    returning = "meter_id, new_value, company_id, feature_id, event_time, quantity, billable_delta, created_at"
    return (
        f"WITH u AS ({update} RETURNING id, value), e AS ({insert} RETURNING {returning}), "
        f"ro AS ({rollup}), rh AS ({hourly}){dimensions} SELECT meter_id, new_value FROM e"
    )


def _why_not_applied(existing, *, quantity: int, terms: AccessTerms, feature: FeatureInfo) -> object:
    if existing is None:
        return _NO_METER
    current = existing[0]
    if terms.quantity_limit is not None and current + quantity > terms.quantity_limit:
        raise limit_exceeded(
            current_usage=current, quantity_limit=terms.quantity_limit, requested=quantity, feature_code=feature.code
        )
    if current > MAX_BIGINT - quantity:
        raise overflow()
    # The meter appeared (another request opened the period) or a correction
    # lowered it since our UPDATE: try again.
    return _RETRY


# --- Batches ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrackRequest:
    """One event of a batch, shaped like a single track call."""

    feature_code: str
    quantity: int = 1
    company_id: UUID | None = None
    external_org_id: str | None = None
    idempotency_key: str | None = None
    timestamp: datetime | None = None
    metadata: dict | None = None


@dataclass
class BatchItemResult:
    index: int
    status: Literal["ok", "duplicate", "error"]
    result: UsageResult | None = None
    error: ApplicationError | None = None


@dataclass
class _Prepared:
    index: int
    request: TrackRequest
    company_id: UUID
    feature: FeatureInfo
    event_time: datetime
    period: Period
    fingerprint: str
    terms: AccessTerms | None = None
    meter_key: tuple = field(default=())


def usage_track_batch(
    *,
    product_id: UUID,
    requests: Sequence[TrackRequest],
    actor=None,
    source: str = UsageSource.API,
) -> list[BatchItemResult]:
    """Track up to 1000 events with the rules of `usage_track` applied to each
    in order: per event `ok` (counted), `duplicate` (its idempotency key was
    already used with the same body: the original result, nothing counted) or
    `error` (the 400/404/409/412 a single track would answer; nothing counted).
    A constant number of queries per batch: companies, features, access,
    known keys and meters are read in bulk, each meter is updated once and the
    events are inserted in one statement."""
    if len(requests) > MAX_BATCH_SIZE:
        raise BadRequest.for_field("events", f"At most {MAX_BATCH_SIZE} events per batch.")
    now = timezone.now()
    results: list[BatchItemResult | None] = [None] * len(requests)
    prepared = _batch_prepare(product_id=product_id, requests=requests, now=now, results=results)
    if prepared:
        terms = access_terms_bulk(
            company_ids={p.company_id for p in prepared}, feature_ids={p.feature.id for p in prepared}
        )
        for item in prepared:
            item.terms = terms.get((item.company_id, item.feature.id)) or NO_ACCESS
        for attempt in range(BATCH_ATTEMPTS):
            try:
                outcome = _batch_apply(product_id=product_id, prepared=prepared, now=now, actor=actor, source=source)
                break
            except (IntegrityError, OperationalError) as exc:
                if attempt == BATCH_ATTEMPTS - 1 or not _is_retryable_race(exc):
                    raise
        for item_result in outcome:
            results[item_result.index] = item_result
        for company_id in {item.company_id for item in prepared if results[item.index].status == "ok"}:
            account_activity_touch(company_id=company_id, product_id=product_id, at=now)
    return results  # type: ignore[return-value]


def _is_retryable_race(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    # PostgreSQL deadlock_detected / serialization_failure.
    return getattr(getattr(exc, "__cause__", None), "sqlstate", None) in {"40P01", "40001"}


def _error(index: int, error: ApplicationError) -> BatchItemResult:
    return BatchItemResult(index=index, status="error", error=error)


def _batch_prepare(
    *, product_id: UUID, requests: Sequence[TrackRequest], now: datetime, results: list
) -> list[_Prepared]:
    """Validate and resolve every event in bulk (two queries); invalid ones get
    their error result at once."""
    visible, by_external = companies_visible_bulk(
        product_id=product_id,
        company_ids={r.company_id for r in requests if r.company_id is not None},
        external_org_ids={r.external_org_id for r in requests if r.external_org_id is not None},
    )
    # A merged duplicate's id is 409 naming the kept company, as for a single
    # track (only looked up when some id is not visible).
    missing = {r.company_id for r in requests if r.company_id is not None and r.company_id not in visible}
    tombstones = company_tombstones_bulk(product_id=product_id, company_ids=missing) if missing else {}
    features = features_by_code(product_id=product_id, codes={r.feature_code for r in requests})
    prepared = []
    # Periods already computed per (reset period, company): most events of a
    # batch fall into a handful of periods. billing_period asks billing's
    # resolver for each event, since subscription periods may change mid-batch.
    known_periods: dict[tuple, list[Period]] = {}
    for index, request in enumerate(requests):
        try:
            check_quantity(request.quantity, field="quantity")
            event_time = check_event_time(timestamp=request.timestamp, now=now)
            if request.external_org_id is not None:
                company_id = by_external.get(request.external_org_id)
            else:
                company_id = request.company_id if request.company_id in visible else None
            if company_id is None:
                if request.company_id in tombstones:
                    raise company_merged_conflict(
                        company_id=request.company_id, kept_company_id=tombstones[request.company_id]
                    )
                raise company_not_found()
            feature = features.get(request.feature_code)
            if feature is None:
                raise unknown_feature(request.feature_code)
            if feature.kind != "metered":
                raise not_metered(feature.code)
        except ApplicationError as error:
            results[index] = _error(index, error)
            continue
        period = None
        if feature.reset_period != "billing_period":
            known = known_periods.setdefault((feature.reset_period, company_id), [])
            period = next((p for p in known if p.contains(event_time)), None)
        if period is None:
            period = period_for(feature.reset_period, event_time, company_id=company_id)
            if feature.reset_period != "billing_period":
                known.append(period)
        prepared.append(
            _Prepared(
                index=index,
                request=request,
                company_id=company_id,
                feature=feature,
                event_time=event_time,
                period=period,
                fingerprint=track_fingerprint(
                    company_id=company_id,
                    feature_code=feature.code,
                    quantity=request.quantity,
                    timestamp=request.timestamp,
                    metadata=request.metadata,
                ),
                meter_key=(company_id, feature.id, period.start),
            )
        )
    return prepared


def _batch_apply(
    *, product_id: UUID, prepared: list[_Prepared], now: datetime, actor, source: str
) -> list[BatchItemResult]:
    outcome: list[BatchItemResult] = []
    keys = {p.request.idempotency_key for p in prepared if p.request.idempotency_key}
    # Open the periods' meters first, in their own short transactions, so the
    # main transaction below only locks rows that already exist.
    candidates = [p for p in prepared if p.terms.refusal(now) is None]
    meter_ids = meters_get_or_create(keys={(p.company_id, p.feature.id, p.period) for p in candidates}, now=now)

    with transaction.atomic():
        stored = stored_rows(product_id=product_id, idempotency_keys=keys)

        # Decide, in order, which events are duplicates or refused.
        to_apply: list[_Prepared] = []
        first_with_key: dict[str, _Prepared] = {}
        repeats: list[tuple[_Prepared, _Prepared]] = []
        for item in prepared:
            key = item.request.idempotency_key
            if key:
                if key in stored:
                    event = stored[key]
                    if event["request_fingerprint"] != item.fingerprint:
                        outcome.append(_error(item.index, idempotency_conflict(key)))
                    else:
                        outcome.append(
                            BatchItemResult(
                                index=item.index,
                                status="duplicate",
                                result=result_from_row(event, feature_code=item.feature.code, replayed=True),
                            )
                        )
                    continue
                if key in first_with_key:
                    first = first_with_key[key]
                    if first.fingerprint != item.fingerprint:
                        outcome.append(_error(item.index, idempotency_conflict(key)))
                    else:
                        repeats.append((item, first))
                    continue
                first_with_key[key] = item
            refusal = item.terms.refusal(now)
            if refusal:
                outcome.append(_error(item.index, access_refused(reason=refusal, feature_code=item.feature.code)))
                continue
            to_apply.append(item)

        # Each event's row is built before any meter is locked (concurrent
        # batches on the same companies wait for those locks): under them only
        # the values it moved the meter between are filled in.
        rows = [
            usage_event_row(
                product_id=product_id,
                company_id=item.company_id,
                feature=item.feature,
                terms=item.terms,
                meter_id=meter_ids[item.meter_key],
                event_type=UsageEventType.INCREMENT,
                previous_value=0,
                new_value=item.request.quantity,
                event_time=item.event_time,
                now=now,
                idempotency_key=item.request.idempotency_key,
                request_fingerprint=item.fingerprint,
                source=source,
                actor=actor,
                metadata=item.request.metadata,
            )
            for item in to_apply
        ]
        # Lock the meters in id order (no deadlock between batches), then apply
        # each event in order against the locked values: the limit holds per
        # event, exactly as if they had been tracked one by one.
        touched_ids = sorted({meter_ids[item.meter_key] for item in to_apply})
        values = dict(
            UsageMeter.objects.select_for_update()
            .filter(id__in=touched_ids)
            .order_by("id")
            .values_list("id", "value")
        )
        priced = {item.company_id for item in to_apply if item.feature.credit_cost}
        # Locks the wallets (after the meters, as a single track does).
        credit_budget = UsageCreditBudget(product_id=product_id, company_ids=priced) if priced else None
        events: list[EventRow] = []
        tracked: list[TrackedUsage] = []
        admitted: list[tuple[_Prepared, EventRow]] = []
        by_index: dict[int, BatchItemResult] = {}
        for item, row in zip(to_apply, rows, strict=True):
            meter_id = meter_ids[item.meter_key]
            current = values[meter_id]
            quantity = item.request.quantity
            limit = item.terms.quantity_limit
            if limit is not None and current + quantity > limit:
                error = limit_exceeded(
                    current_usage=current, quantity_limit=limit, requested=quantity, feature_code=item.feature.code
                )
                by_index[item.index] = _error(item.index, error)
                continue
            if current + quantity > MAX_BIGINT:
                by_index[item.index] = _error(item.index, overflow())
                continue
            if credit_budget is not None:
                cost = _credit_cost(billable_delta(current, current + quantity, item.terms.included_quantity), item.feature)
                refused = credit_budget.admit(company_id=item.company_id, amount=cost)
                if refused is not None:
                    by_index[item.index] = _error(item.index, refused)
                    continue
            values[meter_id] = current + quantity
            event = usage_event_row_apply(row, meter_id=meter_id, new_value=current + quantity, feature=item.feature)
            events.append(event)
            tracked.append(TrackedUsage(row=event, feature=item.feature, terms=item.terms))
            admitted.append((item, event))

        deltas: dict[UUID, int] = {}
        for event in events:
            deltas[event["meter_id"]] = deltas.get(event["meter_id"], 0) + event["quantity"]
        if deltas:
            _meters_add(deltas, now=now)
            # Rows in key order: two batches sharing keys take the unique-index
            # entries in the same order and cannot deadlock on them.
            events.sort(key=lambda e: (e["idempotency_key"] is None, e["idempotency_key"] or ""))
            usage_events_insert(events)
            _after_counter_update(product_id=product_id, tracked=tracked, now=now)

    for item, event in admitted:
        by_index[item.index] = BatchItemResult(
            index=item.index, status="ok", result=result_from_row(event, feature_code=item.feature.code)
        )
    for item, first in repeats:
        first_result = by_index.get(first.index) or next(r for r in outcome if r.index == first.index)
        if first_result.status == "error":
            outcome.append(_error(item.index, first_result.error))
        else:
            outcome.append(
                BatchItemResult(
                    index=item.index,
                    status="duplicate",
                    result=_replayed(first_result.result),
                )
            )
    outcome.extend(by_index.values())
    return outcome


def _meters_add(deltas: dict[UUID, int], *, now: datetime) -> None:
    """Add each meter's delta in one statement (the rows are locked by the caller)."""
    if connection.vendor == "postgresql":
        # Two array parameters, whatever the number of meters: a short, fixed text.
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_meter_table()} AS m SET value = m.value + d.delta, updated_at = %s "
                "FROM unnest(%s::uuid[], %s::bigint[]) AS d(id, delta) WHERE m.id = d.id",
                [now, list(deltas), list(deltas.values())],
            )
        return
    ids = [db_value(UsageMeter, "id", meter_id) for meter_id in deltas]
    cases = " ".join(["WHEN %s THEN %s"] * len(ids))
    params: list = [value for pair in zip(ids, deltas.values(), strict=True) for value in pair]
    params += [db_value(UsageMeter, "updated_at", now), *ids]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_meter_table()} SET value = value + CASE id {cases} END, updated_at = %s "
            f"WHERE id IN ({', '.join(['%s'] * len(ids))})",
            params,
        )


def _replayed(result: UsageResult) -> UsageResult:
    return replace(result, replayed=True)
