"""Pieces every usage write shares: the result shape, the billable arithmetic,
idempotency fingerprints, the timestamp window and the post-commit cache
invalidation. Nothing in here writes to the database."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import connection

from config.api.serializers import MAX_BIGINT, iso_utc
from config.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from entitlements.rules import access_window_refusal

from .models import StripeDeliveryStatus, UsageEvent

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
    """The feature access in force for one company × feature at write time."""

    access_id: UUID | None
    is_enabled: bool
    quantity_limit: int | None
    included_quantity: int
    valid_from: datetime | None
    valid_until: datetime | None

    def refusal(self, now: datetime) -> str | None:
        """Why a track is refused (None = allowed): no access row, or the
        access is not in force (`entitlements.rules`)."""
        if self.access_id is None:
            return "no_access"
        return access_window_refusal(
            is_enabled=self.is_enabled, valid_from=self.valid_from, valid_until=self.valid_until, at=now
        )


NO_ACCESS = AccessTerms(None, False, None, 0, None, None)


@dataclass(frozen=True)
class FeatureInfo:
    id: UUID
    code: str
    kind: str
    reset_period: str
    stripe_meter_event_name: str
    # Percentages of the limit that notify the product (metering.services.alerts).
    alert_thresholds: tuple[int, ...] = (80, 100)


def billable(value: int, included_quantity: int) -> int:
    return max(0, value - included_quantity)


def billable_delta(previous_value: int, new_value: int, included_quantity: int) -> int:
    """The change in billable quantity an event caused, with the included
    quantity in force when it was written; negative when a correction lowers
    billable usage (Stripe sums signed meter values)."""
    return billable(new_value, included_quantity) - billable(previous_value, included_quantity)


def stripe_status_for(feature: FeatureInfo, delta: int) -> str:
    """Pending delivery only when there is something for a Stripe meter to sum.
    Whether the company has a Stripe customer is decided at delivery (billing)."""
    if feature.stripe_meter_event_name and delta != 0:
        return StripeDeliveryStatus.PENDING
    return StripeDeliveryStatus.NOT_APPLICABLE


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
    """The services' own guard (the API validates first; the admin and other
    apps call services directly)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest.for_field(field, "Must be a whole number.")
    if abs(value) > MAX_BIGINT:
        raise BadRequest.for_field(field, "Out of range (64-bit).")
    if minimum is not None and value < minimum:
        raise BadRequest.for_field(field, f"Must be at least {minimum}.")
    if value == 0 and not allow_zero:
        raise BadRequest.for_field(field, "Must not be zero.")


def limit_exceeded(*, current_usage: int, quantity_limit: int, requested: int, feature_code: str) -> PreconditionFailed:
    return PreconditionFailed(
        f"Usage limit of {feature_code} would be exceeded ({current_usage} + {requested} > {quantity_limit}).",
        details={"currentUsage": current_usage, "quantityLimit": quantity_limit, "requested": requested},
    )


def access_refused(*, reason: str, feature_code: str) -> PreconditionFailed:
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


def company_not_found() -> NotFound:
    return NotFound("Company not found.")


def idempotency_conflict(key: str) -> Conflict:
    return Conflict(
        "This idempotency key was already used with a different request body.",
        details={"idempotencyKey": key},
    )


def result_from_event(event: UsageEvent, *, feature_code: str, replayed: bool = False) -> UsageResult:
    """The UsageResult an event answered with (rebuilt from the stored row)."""
    return UsageResult(
        feature_code=feature_code,
        previous_usage=event.previous_value,
        current_usage=event.new_value,
        delta=event.quantity,
        quantity_limit=event.quantity_limit,
        included_quantity=event.included_quantity,
        meter_id=event.meter_id,
        event_id=event.id,
        replayed=replayed,
    )


def stored_result(
    *, product_id: UUID, idempotency_key: str | None, request_fingerprint: str
) -> UsageResult | None:
    """The original result for a key already used in this product, None if
    the key is new; 409 if it was used with another body."""
    if not idempotency_key:
        return None
    event = (
        UsageEvent.objects.filter(product_id=product_id, idempotency_key=idempotency_key)
        .select_related("feature")
        .only(*_RESULT_FIELDS, "request_fingerprint", "feature__code")
        .first()
    )
    if event is None:
        return None
    if event.request_fingerprint != request_fingerprint:
        raise idempotency_conflict(idempotency_key)
    return result_from_event(event, feature_code=event.feature.code, replayed=True)


_RESULT_FIELDS = (
    "id",
    "meter_id",
    "previous_value",
    "new_value",
    "quantity",
    "quantity_limit",
    "included_quantity",
)


def db_value(model, field_name: str, value: Any) -> Any:
    """A value as the database stores it, for raw SQL (SQLite keeps UUIDs as
    hex text and datetimes as naive UTC text)."""
    return model._meta.get_field(field_name).get_db_prep_value(value, connection, prepared=False)
