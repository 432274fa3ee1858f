"""Pieces every usage write shares: the result shape, the billable arithmetic,
idempotency fingerprints, the timestamp window and the post-commit cache
invalidation. Nothing in here writes to the database."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import connection

from config.api.serializers import MAX_BIGINT, iso_utc
from config.db import prepared_cursor
from config.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from entitlements.rules import access_refusal, access_resolve

from .models import StripeDeliveryStatus, UsageEvent, UsageEventKey

# Stripe accepts meter events up to 35 days old, and a little clock skew ahead.
BACKDATE_WINDOW = timedelta(days=35)
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class UsageResult:
    """What track, set and adjust answer (SPEC §5 UsageResult)."""

    feature_code: str
    previous_usage: int
    current_usage: int
    delta: int
    quantity_limit: int | None
    included_quantity: int
    meter_id: UUID
    event_id: UUID | None
    success: bool = True
    # True when this answer is the stored result of an earlier call with the
    # same idempotency key (the API sends `Idempotent-Replayed: true`).
    replayed: bool = False

    @property
    def remaining(self) -> int | None:
        if self.quantity_limit is None:
            return None
        return max(0, self.quantity_limit - self.current_usage)

    @property
    def is_at_limit(self) -> bool:
        return self.quantity_limit is not None and self.current_usage >= self.quantity_limit

    @property
    def billable_quantity(self) -> int:
        return billable(self.current_usage, self.included_quantity)


@dataclass(frozen=True)
class AccessTerms:
    """The feature access in force for one company × feature at write time
    (the layers resolved by `entitlements.rules.access_resolve`)."""

    access_id: UUID | None
    is_enabled: bool
    quantity_limit: int | None
    included_quantity: int
    # Why a write is refused by access (None = allowed), see `access_refusal`.
    refused: str | None = None
    # The account is suspended by staff (SPEC §3): tracks are 412.
    suspended: bool = False

    @classmethod
    def from_row(cls, access_id: UUID | None, row: dict | None, *, at: datetime, suspended: bool = False) -> "AccessTerms":
        if access_id is None or not row:
            return cls(None, False, None, 0, "no_access", suspended)
        effective = access_resolve(row, at=at)
        return cls(
            access_id,
            effective.granted and effective.is_enabled,
            effective.quantity_limit,
            effective.included_quantity,
            access_refusal(row, at=at),
            suspended,
        )

    def refusal(self, now: datetime) -> str | None:
        """Why a track is refused (None = allowed): the account is suspended,
        no access row, or the access in force is not enabled."""
        if self.suspended:
            return "suspended"
        return self.refused


NO_ACCESS = AccessTerms(None, False, None, 0, "no_access")


@dataclass(frozen=True)
class FeatureInfo:
    id: UUID
    code: str
    kind: str
    reset_period: str
    stripe_meter_event_name: str
    # Percentages of the limit that notify the product (metering.services.alerts).
    alert_thresholds: tuple[int, ...] = (80, 100)
    # Credits per billable unit: the feature is paid from the wallet (SPEC §5).
    credit_cost: int | None = None
    # Metadata keys whose values the rollups keep totals for (SPEC §5, `rollups`).
    dimensions: tuple[str, ...] = ()


# --- Dimensions (SPEC §5) ------------------------------------------------------------

# Per company × feature × dimension × UTC day (or any statistics period), the
# values beyond the 100 most frequent count as OTHER_VALUE.
TOP_VALUES_PER_DAY = 100
OTHER_VALUE = "other"
MAX_DIMENSION_VALUE_LENGTH = 100
# Hourly totals (and a dimension's hours) are kept this long: Stripe's
# backdating window, so no event can land in an hour older than that.
HOURLY_RETENTION = timedelta(days=35)


def utc_hour(moment: datetime) -> datetime:
    """The start of the UTC hour an event at `moment` counts in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hourly_cutoff(now: datetime) -> datetime:
    """The oldest hour whose totals are kept: older hours are pruned (and no
    event can land there: usage is at most 35 days back)."""
    return utc_hour(now - HOURLY_RETENTION)


def dimension_value(metadata: Any, key: str) -> str:
    """The value an event counts under for dimension `key`: the metadata
    value as text (a string as is, anything else as compact JSON), at most
    100 characters; "" when the key is missing or null (the API's null). A
    value "other" counts in the fold bucket of that name."""
    value = metadata.get(key) if isinstance(metadata, dict) else None
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return value.replace("\x00", "")[:MAX_DIMENSION_VALUE_LENGTH]


def dimension_values(feature: FeatureInfo, metadata: Any) -> list[tuple[str, str]]:
    """(dimension, value) for each of the feature's dimensions, in key order
    (the order every writer locks dimension rows in)."""
    return [(key, dimension_value(metadata, key)) for key in sorted(feature.dimensions)]


def dimension_values_kept(totals: dict[str, tuple[int, int]], limit: int = TOP_VALUES_PER_DAY) -> set[str]:
    """THE rule for which values keep their own row in a period: the `limit`
    most frequent, by (events desc, quantity desc, value asc) over
    {value: (events, quantity)}; OTHER_VALUE is the bucket, never ranked. The
    fold (`rollups.dimension_rows_fold`) and the statistics both call it."""
    ranked = sorted(
        (value for value in totals if value != OTHER_VALUE),
        key=lambda value: (-totals[value][0], -totals[value][1], value),
    )
    return set(ranked[:limit])


# --- What is billable, and what goes to Stripe (issue 9, item 3) -----------------
#
# Each rule is one Python function here. Where SQL needs the same rule (the
# single-track statement computes the event's columns from the row its
# UPDATE returns), the SQL is generated by the `*_sql` function beside it,
# and tests/metering/test_rules.py runs both over every case and checks
# they agree.


def billable(value: int, included_quantity: int) -> int:
    """Billable quantity of a usage value: what lies beyond the included quantity."""
    return max(0, value - included_quantity)


def billable_sql(value: str, included_quantity: str) -> str:
    """`billable` as a PostgreSQL expression over two SQL expressions."""
    return f"GREATEST(({value}) - ({included_quantity}), 0)"


def billable_delta(previous_value: int, new_value: int, included_quantity: int) -> int:
    """The change in billable quantity an event caused, with the included
    quantity in force when it was written; negative when a correction lowers
    billable usage (Stripe sums signed meter values)."""
    return billable(new_value, included_quantity) - billable(previous_value, included_quantity)


def billable_delta_sql(previous_value: str, new_value: str, included_quantity: str) -> str:
    return f"({billable_sql(new_value, included_quantity)} - {billable_sql(previous_value, included_quantity)})"


def goes_to_stripe(*, stripe_meter_event_name: str, billable_delta: int) -> bool:
    """Whether an event is for a Stripe meter: its feature reports to a meter
    and it changed billable usage. (Whether the company has a Stripe customer
    is decided at delivery, in billing: without one, events wait.)"""
    return bool(stripe_meter_event_name) and billable_delta != 0


def stripe_status_for(feature: FeatureInfo, delta: int) -> str:
    """The delivery status an event is written with (see `goes_to_stripe`)."""
    if goes_to_stripe(stripe_meter_event_name=feature.stripe_meter_event_name, billable_delta=delta):
        return StripeDeliveryStatus.PENDING
    return StripeDeliveryStatus.NOT_APPLICABLE


def stripe_status_sql(has_meter_event_name: str, billable_delta: str) -> str:
    """`stripe_status_for` as a PostgreSQL expression (`has_meter_event_name`
    is a boolean SQL expression)."""
    return (
        f"CASE WHEN ({has_meter_event_name}) AND ({billable_delta}) <> 0 "
        f"THEN '{StripeDeliveryStatus.PENDING.value}' ELSE '{StripeDeliveryStatus.NOT_APPLICABLE.value}' END"
    )


def fingerprint(operation: str, **body: Any) -> str:
    """sha256 of the canonical body of a usage write: a replay with the same
    key must carry the same body (a different one is 409)."""
    canonical = json.dumps({"op": operation, **body}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def track_fingerprint(
    *, company_id: UUID, feature_code: str, quantity: int, timestamp: datetime | None, metadata: dict | None
) -> str:
    return fingerprint(
        "track",
        companyId=str(company_id),
        featureCode=feature_code,
        quantity=quantity,
        timestamp=iso_utc(timestamp),
        metadata=metadata or {},
    )


def check_event_time(*, timestamp: datetime | None, now: datetime, field: str = "timestamp") -> datetime:
    """The event time of a write: `timestamp` if inside [now − 35 days, now + 5 min], else 400."""
    if timestamp is None:
        return now
    if timestamp.tzinfo is None:
        raise BadRequest.for_field(field, "Must include a time zone (use Z for UTC).")
    if timestamp < now - BACKDATE_WINDOW:
        raise BadRequest.for_field(field, "Must not be more than 35 days in the past.")
    if timestamp > now + FUTURE_TOLERANCE:
        raise BadRequest.for_field(field, "Must not be more than 5 minutes in the future.")
    return timestamp


def check_quantity(value: int, *, field: str, minimum: int | None = 1, allow_zero: bool = False) -> None:
    """The one check of a quantity, delta or absolute value of a usage write:
    the services call it, the admin's form calls it, and the API's delta
    reaches it through the service."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest.for_field(field, "Must be a whole number.")
    if abs(value) > MAX_BIGINT:
        raise BadRequest.for_field(field, "Out of range (64-bit).")
    if minimum is not None and value < minimum:
        raise BadRequest.for_field(field, "Usage cannot go below 0." if minimum == 0 else f"Must be at least {minimum}.")
    if value == 0 and not allow_zero:
        raise BadRequest.for_field(field, "A delta must not be 0.")


def limit_exceeded(*, current_usage: int, quantity_limit: int, requested: int, feature_code: str) -> PreconditionFailed:
    return PreconditionFailed(
        f"Usage limit of {feature_code} would be exceeded ({current_usage} + {requested} > {quantity_limit}).",
        details={"currentUsage": current_usage, "quantityLimit": quantity_limit, "requested": requested},
    )


def access_refused(*, reason: str, feature_code: str) -> PreconditionFailed:
    if reason == "suspended":
        return PreconditionFailed(
            "The company's account is suspended.",
            details={"featureCode": feature_code, "reason": "suspended", "status": "suspended"},
        )
    messages = {
        "no_access": f"The company has no access to {feature_code}.",
        "disabled": f"{feature_code} is disabled for this company.",
        "expired": f"Access to {feature_code} has expired.",
        "not_yet_valid": f"Access to {feature_code} is not valid yet.",
    }
    return PreconditionFailed(messages[reason], details={"featureCode": feature_code, "reason": reason})


def overflow(*, field: str = "quantity") -> BadRequest:
    return BadRequest.for_field(field, "Usage would exceed the largest storable value (64-bit).")


def unknown_feature(feature_code: str) -> NotFound:
    return NotFound(
        f"Unknown feature {feature_code!r}.", details={"fields": {"featureCode": ["Unknown feature."]}}
    )


def not_metered(feature_code: str) -> BadRequest:
    return BadRequest.for_field("featureCode", f"{feature_code} is not a metered feature.")


def idempotency_conflict(key: str) -> Conflict:
    return Conflict(
        "This idempotency key was already used with a different request body.",
        details={"idempotencyKey": key},
    )


def result_from_row(row: dict[str, Any], *, feature_code: str, replayed: bool = False) -> UsageResult:
    """The UsageResult an event answered with, rebuilt from its row (a row
    about to be inserted, or one read back by `stored_result`)."""
    return UsageResult(
        feature_code=feature_code,
        previous_usage=row["previous_value"],
        current_usage=row["new_value"],
        delta=row["quantity"],
        quantity_limit=row["quantity_limit"],
        included_quantity=row["included_quantity"],
        meter_id=row["meter_id"],
        event_id=row["id"],
        replayed=replayed,
    )


# The columns a stored result is rebuilt from (plus the request fingerprint).
RESULT_COLUMNS = (
    "id",
    "meter_id",
    "previous_value",
    "new_value",
    "quantity",
    "quantity_limit",
    "included_quantity",
    "request_fingerprint",
)


def stored_result(
    *, product_id: UUID, idempotency_key: str | None, request_fingerprint: str
) -> UsageResult | None:
    """The original result for a key already used in this product, None if
    the key is new; 409 if it was used with another body."""
    if not idempotency_key:
        return None
    row = (
        UsageEvent.objects.filter(product_id=product_id, idempotency_key=idempotency_key)
        .values(*RESULT_COLUMNS, "feature__code")
        .first()
    )
    if row is None:
        return None
    if row["request_fingerprint"] != request_fingerprint:
        raise idempotency_conflict(idempotency_key)
    return result_from_row(row, feature_code=row["feature__code"], replayed=True)


def stored_rows(*, product_id: UUID, idempotency_keys: set[str]) -> dict[str, dict[str, Any]]:
    """The stored events (`RESULT_COLUMNS`) of those of these keys already
    used in this product, by key (a batch's replays, read in one query).
    On PostgreSQL the keys are looked up in the key table (`UsageEventKey`,
    one unique index), and only the events found are read, each in its own
    partition; looking them up on the partitioned event table would probe
    every partition's index for every key, though most keys are new."""
    if not idempotency_keys:
        return {}
    if connection.vendor != "postgresql":
        rows = UsageEvent.objects.filter(product_id=product_id, idempotency_key__in=idempotency_keys).values(
            *RESULT_COLUMNS, "idempotency_key"
        )
        return {row["idempotency_key"]: row for row in rows}
    with prepared_cursor() as cursor:
        cursor.execute(_stored_rows_sql(), [product_id, list(idempotency_keys)])
        names = [column.name for column in cursor.description]
        return {row[-1]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def _stored_rows_sql() -> str:
    events, keys = UsageEvent._meta.db_table, UsageEventKey._meta.db_table
    columns = ", ".join(f"e.{column}" for column in RESULT_COLUMNS)
    return (
        f"SELECT {columns}, k.idempotency_key FROM {keys} k "
        f"JOIN {events} e ON e.id = k.event_id AND e.event_time = k.event_time "
        "WHERE k.product_id = %s AND k.idempotency_key = ANY(%s)"
    )


def db_value(model, field_name: str, value: Any) -> Any:
    """A value as the database stores it, for raw SQL (SQLite keeps UUIDs as
    hex text and datetimes as naive UTC text)."""
    return model._meta.get_field(field_name).get_db_prep_value(value, connection, prepared=False)
