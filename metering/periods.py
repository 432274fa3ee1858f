"""Usage periods: which [start, end) window of a feature's `resetPeriod`
contains a moment. All in UTC.

`billing_period` follows the company's subscription: subscriptions belong
to billing, which sits downstream of metering, so billing pushes each
company's subscription periods into metering's `BillingPeriod` table
(`metering.services.billing_periods_set`, SPEC §1 (b)). A moment no such
period contains falls in its calendar month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from entitlements.models import ResetPeriod

# The single "period" of a feature that never resets.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime | None  # exclusive; None = never ends

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment < self.end)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("period arithmetic needs an aware datetime")
    return moment.astimezone(UTC)


def _month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def _calendar_month(moment: datetime) -> Period:
    start = _month_start(moment.year, moment.month)
    end = _month_start(moment.year + 1, 1) if moment.month == 12 else _month_start(moment.year, moment.month + 1)
    return Period(start, end)


def period_for(reset_period: str, at: datetime, *, company_id=None, billing_periods: dict | None = None) -> Period:
    """The period of `reset_period` that contains `at`. A metered feature
    without a reset period never resets. `billing_periods` (from
    `billing_periods_at`) saves the query of a `billing_period` feature when
    many companies are read at once."""
    moment = _utc(at)
    if reset_period in ("", ResetPeriod.NEVER):
        return Period(EPOCH, None)
    if reset_period == ResetPeriod.DAILY:
        start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        return Period(start, start + timedelta(days=1))
    if reset_period == ResetPeriod.WEEKLY:
        # ISO weeks start on Monday 00:00 UTC.
        day = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        start = day - timedelta(days=day.weekday())
        return Period(start, start + timedelta(days=7))
    if reset_period == ResetPeriod.MONTHLY:
        return _calendar_month(moment)
    if reset_period == ResetPeriod.YEARLY:
        return Period(datetime(moment.year, 1, 1, tzinfo=UTC), datetime(moment.year + 1, 1, 1, tzinfo=UTC))
    if reset_period == ResetPeriod.BILLING_PERIOD:
        if billing_periods is not None:
            bounds = billing_periods.get(company_id)
        else:
            bounds = billing_periods_at(company_ids=[company_id], at=moment).get(company_id) if company_id is not None else None
        if bounds:
            return Period(_utc(bounds[0]), _utc(bounds[1]))
        return _calendar_month(moment)
    raise ValueError(f"unknown reset period {reset_period!r}")


def billing_periods_at(*, company_ids, at: datetime) -> dict:
    """company id → (start, end) of its latest-starting billing period that
    contains `at` (companies without one are missing), in one query."""
    from .models import BillingPeriod

    found: dict = {}
    rows = (
        BillingPeriod.objects.filter(company_id__in=list(company_ids), period_start__lte=at, period_end__gt=at)
        .order_by("company_id", "-period_start")
        .values_list("company_id", "period_start", "period_end")
    )
    for company_id, start, end in rows:
        found.setdefault(company_id, (start, end))
    return found
