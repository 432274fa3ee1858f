"""Reads of the metering app: resolving what a usage call refers to, history,
snapshots, current-period usage, the feature checks (served here) and the
figures the admin shows."""

from __future__ import annotations

import json

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from companies.models import Account, CompanyStatus, ProductLink
from companies.selectors import company_not_found, company_tombstone_resolve
from config.db import prepared_cursor
from entitlements.models import ACCESS_ROW_FIELDS, Feature, FeatureAccess, FeatureKind
from entitlements.selectors import (
    Decision,
    FeatureCheck,
    FeatureCheckInput,
    feature_decide,
    feature_check_input,
    feature_credits_available,
    feature_check_inputs_for_company,
)

from .models import UsageDailyRollup, UsageDimensionRollup, UsageEvent, UsageEventType, UsageHourlyRollup, UsageMeter, UsageSnapshot
from .periods import billing_periods_at, period_for
from .rules import (
    OTHER_VALUE,
    dimension_values_kept,
    hourly_cutoff,
    NO_ACCESS,
    db_value,
    AccessTerms,
    FeatureInfo,
    billable,
    not_metered,
    unknown_feature,
)


# --- What a call refers to ------------------------------------------------------


_FEATURE_COLUMNS = (
    "id", "code", "kind", "reset_period", "stripe_meter_event_name", "alert_thresholds", "credit_cost", "dimensions",
)


def _target_sql(by_external_org_id: bool) -> str:
    link = ProductLink._meta.db_table
    feature = Feature._meta.db_table
    access = FeatureAccess._meta.db_table
    account = Account._meta.db_table
    company_condition = "l.external_org_id = %s" if by_external_org_id else "l.company_id = %s"
    # A company is visible to a product iff it has a link in it; the link row
    # anchors the query, so one statement answers "which company", "which
    # feature" and "what access" (a company may have several links: LIMIT 1).
    return (
        "SELECT l.company_id, f.id, f.code, f.kind, f.reset_period, f.stripe_meter_event_name, "
        "a.id, a.is_enabled, a.quantity_limit, a.included_quantity, a.valid_from, a.valid_until, f.alert_thresholds, "
        "f.credit_cost, a.tier_granted, a.source, a.overrides, acc.status, f.dimensions "
        f"FROM {link} l "
        f"LEFT JOIN {feature} f ON f.product_id = l.product_id AND f.code = %s "
        f"LEFT JOIN {access} a ON a.feature_id = f.id AND a.company_id = l.company_id "
        f"LEFT JOIN {account} acc ON acc.company_id = l.company_id AND acc.product_id = l.product_id "
        f"WHERE l.product_id = %s AND {company_condition} LIMIT 1"
    )


def _uuid(value) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    return UUID(value)


def _aware(value) -> datetime | None:
    """Raw SQLite rows carry datetimes as naive UTC text; PostgreSQL's are aware."""
    if value is None or isinstance(value, datetime) and value.tzinfo is not None:
        return value
    parsed = value if isinstance(value, datetime) else parse_datetime(value)
    return parsed.replace(tzinfo=UTC)


def _thresholds(value) -> tuple:
    """A JSON list column (alert_thresholds, dimensions) from a raw row: a list
    (PostgreSQL jsonb) or JSON text (SQLite)."""
    if isinstance(value, str):
        value = json.loads(value)
    return tuple(value or ())


def usage_target_get(
    *, product_id: UUID, feature_code: str, company_id: UUID | None = None, external_org_id: str | None = None
) -> tuple[UUID, FeatureInfo, AccessTerms]:
    """(company id, metered feature, access terms) for a usage call, in one
    query: 404 for a company not visible to the product or an unknown feature,
    400 for a feature that is not metered. Access is returned as found; the
    caller decides what it allows. (Raw SQL: this runs on every track.)"""
    by_external = external_org_id is not None
    params = [
        feature_code,
        db_value(ProductLink, "product", product_id),
        external_org_id if by_external else db_value(ProductLink, "company", company_id),
    ]
    with prepared_cursor() as cursor:
        cursor.execute(_target_sql(by_external), params)
        row = cursor.fetchone()
    if row is None:
        if not by_external and company_id is not None:
            # A merged duplicate's id: 409 naming the kept company (a track writes).
            company_tombstone_resolve(product_id=product_id, company_id=company_id)
        raise company_not_found()
    if row[1] is None:
        raise unknown_feature(feature_code)
    feature = FeatureInfo(
        _uuid(row[1]), row[2], row[3], row[4], row[5], _thresholds(row[12]), row[13], _thresholds(row[18])
    )
    if feature.kind != FeatureKind.METERED:
        raise not_metered(feature_code)
    suspended = row[17] == CompanyStatus.SUSPENDED
    if row[6] is None:
        terms = AccessTerms(None, False, None, 0, "no_access", suspended)
    else:
        overrides = row[16]
        if isinstance(overrides, str):
            overrides = json.loads(overrides)
        access_row = {
            "tier_granted": bool(row[14]),
            "is_enabled": bool(row[7]),
            "quantity_limit": row[8],
            "included_quantity": row[9],
            "config": None,
            "source": row[15],
            "overrides": overrides,
            "valid_from": _aware(row[10]),
            "valid_until": _aware(row[11]),
        }
        terms = AccessTerms.from_row(_uuid(row[6]), access_row, at=timezone.now(), suspended=suspended)
    return _uuid(row[0]), feature, terms


def features_by_code(*, product_id: UUID, codes: Iterable[str]) -> dict[str, FeatureInfo]:
    rows = Feature.objects.filter(product_id=product_id, code__in=set(codes)).order_by().values_list(*_FEATURE_COLUMNS)
    return {row[1]: FeatureInfo(*row[:5], _thresholds(row[5]), row[6], _thresholds(row[7])) for row in rows}


def access_terms_bulk(*, company_ids: Iterable[UUID], feature_ids: Iterable[UUID]) -> dict[tuple[UUID, UUID], AccessTerms]:
    """Access terms per (company id, feature id), in one query; missing pairs have no access."""
    company_ids, feature_ids = set(company_ids), set(feature_ids)
    if not company_ids or not feature_ids:
        return {}
    rows = FeatureAccess.objects.filter(company_id__in=company_ids, feature_id__in=feature_ids).values(
        "company_id", "id", *ACCESS_ROW_FIELDS
    )
    suspended = set(
        Account.objects.filter(company_id__in=company_ids, status=CompanyStatus.SUSPENDED)
        .filter(product__features__id__in=feature_ids)
        .values_list("company_id", "product__features__id")
    )
    now = timezone.now()
    terms = {
        (row["company_id"], row["feature_id"]): AccessTerms.from_row(
            row["id"], row, at=now, suspended=(row["company_id"], row["feature_id"]) in suspended
        )
        for row in rows
    }
    for pair in suspended - set(terms):
        terms[pair] = AccessTerms(None, False, None, 0, "no_access", True)
    return terms


# --- History and snapshots -------------------------------------------------------


def usage_history_list(
    *,
    product_id: UUID,
    company_id: UUID,
    feature_id: UUID | None = None,
    event_type: str | None = None,
    include_delivered: bool = True,
) -> QuerySet[UsageEvent]:
    """A company's usage events of the product's features, newest first (by
    event time; the API pages through it with `config.api.pagination`)."""
    events = UsageEvent.objects.filter(company_id=company_id, product_id=product_id).select_related("feature")
    if feature_id is not None:
        events = events.filter(feature_id=feature_id)
    if event_type:
        events = events.filter(event_type=event_type)
    if not include_delivered:
        events = events.exclude(stripe_delivery_status="delivered")
    return events.order_by("-event_time", "-created_at", "-id")


def usage_snapshot_list(
    *, product_id: UUID, company_id: UUID, feature_id: UUID | None = None
) -> QuerySet[UsageSnapshot]:
    """A company's usage snapshots of the product's features, newest first."""
    snapshots = UsageSnapshot.objects.filter(company_id=company_id, feature__product_id=product_id).select_related(
        "feature", "meter"
    )
    if feature_id is not None:
        snapshots = snapshots.filter(feature_id=feature_id)
    return snapshots.order_by("-created_at", "-id")


def feature_id_for_code(*, product_id: UUID, feature_code: str) -> UUID:
    feature = features_by_code(product_id=product_id, codes=[feature_code]).get(feature_code)
    if feature is None:
        raise unknown_feature(feature_code)
    return feature.id


# --- Current usage ------------------------------------------------------------------


@lru_cache(maxsize=16)
def _usage_sql(feature_count: int) -> str:
    # Raw SQL with a fixed text per feature count: this runs on every check
    # of a metered feature, and building and compiling the equivalent ORM
    # query costs several times more than PostgreSQL takes to answer it from
    # the unique index on (company, feature, period_start).
    table = connection.ops.quote_name(UsageMeter._meta.db_table)
    pairs = " OR ".join(["(feature_id = %s AND period_start = %s)"] * feature_count)
    return f"SELECT feature_id, value FROM {table} WHERE company_id = %s AND ({pairs})"


def current_usage_read(
    *, company_id: UUID, features: Sequence, at: datetime, periods: dict | None = None
) -> dict[UUID, int]:
    """Usage of each metered feature (objects or check-input dicts with `id`
    and `reset_period`) in the period containing `at`, in one indexed query.
    A period without a meter yet reads 0: a new period starts at zero.
    `periods` (reset period → Period), when given, is filled with the
    periods used, for the caller to report (checks' periodStart/resetAt)."""
    if not features:
        return {}
    # One period computation per reset period (billing_period asks billing).
    periods = {} if periods is None else periods
    params: list = [db_value(UsageMeter, "company", company_id)]
    usage: dict[UUID, int] = {}
    for feature in features:
        feature_id, reset_period = _feature_key(feature)
        if reset_period not in periods:
            periods[reset_period] = period_for(reset_period, at, company_id=company_id)
        params += [db_value(UsageMeter, "feature", feature_id), db_value(UsageMeter, "period_start", periods[reset_period].start)]
        usage[feature_id] = 0
    # Prepared once per connection (config.db): the text is fixed per feature count.
    with prepared_cursor() as cursor:
        cursor.execute(_usage_sql(len(usage)), params)
        for feature_id, value in cursor.fetchall():
            usage[_uuid(feature_id)] = value
    return usage


def _feature_key(feature) -> tuple[UUID, str]:
    if isinstance(feature, dict):
        return feature["id"], feature["reset_period"]
    return feature.id, feature.reset_period


# --- Feature checks (served here: metering knows usage, SPEC §1 (c)) -----------------


def _decide(check_input, *, usage: dict, periods: dict, credits: int | None, at: datetime) -> Decision:
    """`entitlements.decision.feature_decide` with what metering knows:
    usage and the period of a metered feature."""
    feature = check_input.feature
    period = periods.get(feature["reset_period"]) if check_input.is_metered else None
    return feature_decide(
        feature=feature,
        access=check_input.access,
        usage=usage.get(feature["id"], 0),
        tier_code=check_input.tier_code,
        at=at,
        credits_available=credits,
        suspended=check_input.suspended,
        period_start=period.start if period else None,
        reset_at=period.end if period else None,
    )


def feature_decision(
    *, product_id: UUID, company_id: UUID, feature_code: str, require_visible: bool = True, at: datetime | None = None
) -> tuple[Decision, FeatureCheckInput]:
    """The decision of one company × feature with live usage (and the inputs
    it was made from): the cached access data from entitlements, one indexed
    usage read for a metered feature. With `require_visible`, a company not
    linked to the product is 404."""
    at = at or timezone.now()
    check_input = feature_check_input(
        product_id=product_id, company_id=company_id, feature_code=feature_code, require_visible=require_visible
    )
    usage: dict = {}
    periods: dict = {}
    if check_input.is_metered:
        usage = current_usage_read(company_id=company_id, features=[check_input.feature], at=at, periods=periods)
    credits = feature_credits_available(features=[check_input.feature], company_id=company_id, product_id=product_id)
    return _decide(check_input, usage=usage, periods=periods, credits=credits, at=at), check_input


def feature_check(
    *, product_id: UUID, company_id: UUID, feature_code: str, require_visible: bool = True, at: datetime | None = None
) -> FeatureCheck:
    """The check result of one company × feature (see `feature_decision`)."""
    decision, _ = feature_decision(
        product_id=product_id, company_id=company_id, feature_code=feature_code, require_visible=require_visible, at=at
    )
    return decision.check


def feature_checks(*, product_id: UUID, company_id: UUID, at: datetime | None = None) -> list[FeatureCheck]:
    """Check results of every feature of the product, ordered by code, with
    live usage (one query for the access rows, one for usage). Features the
    company has no access to are there too (`not_granted`)."""
    at = at or timezone.now()
    inputs = feature_check_inputs_for_company(product_id=product_id, company_id=company_id)
    periods: dict = {}
    usage = current_usage_read(
        company_id=company_id, features=[i.feature for i in inputs if i.is_metered], at=at, periods=periods
    )
    credits = feature_credits_available(features=[i.feature for i in inputs], company_id=company_id, product_id=product_id)
    return [_decide(item, usage=usage, periods=periods, credits=credits, at=at).check for item in inputs]


@dataclass(frozen=True)
class FeatureExplanation:
    decision: Decision
    access: FeatureAccess | None
    tier: Any
    last_event_at: datetime | None
    at: datetime


def feature_explain(*, product_id: UUID, company_id: UUID, feature_code: str, at: datetime | None = None) -> FeatureExplanation:
    """The check plus how it was decided (SPEC §4 Explain): the same decision
    as the check, the access row with both layers, the tier and the last
    usage event. Not on the hot path (a few more queries)."""
    at = at or timezone.now()
    decision, check_input = feature_decision(
        product_id=product_id, company_id=company_id, feature_code=feature_code, require_visible=False, at=at
    )
    access = (
        FeatureAccess.objects.filter(company_id=company_id, feature_id=check_input.feature["id"])
        .select_related("tier")
        .first()
    )
    last_event_at = (
        UsageEvent.objects.filter(company_id=company_id, feature_id=check_input.feature["id"])
        .order_by("-event_time")
        .values_list("event_time", flat=True)
        .first()
    )
    return FeatureExplanation(decision=decision, access=access, tier=access.tier if access else None, last_event_at=last_event_at, at=at)


@dataclass(frozen=True)
class MeteredFeatureUsage:
    feature: Feature
    current_usage: int
    quantity_limit: int | None
    included_quantity: int
    is_enabled: bool
    period_start: datetime
    period_end: datetime | None

    @property
    def billable_quantity(self) -> int:
        return billable(self.current_usage, self.included_quantity)

    @property
    def percent_of_limit(self) -> int | None:
        if not self.quantity_limit:
            return None
        return min(100, round(100 * self.current_usage / self.quantity_limit))


def company_metered_usage(*, company_id: UUID, at: datetime | None = None) -> list[MeteredFeatureUsage]:
    """Each metered feature of the products the company is linked to, with
    current-period usage against its limit (the admin's usage panel)."""
    return companies_metered_usage(company_ids=[company_id], at=at)[company_id]


def companies_metered_usage(*, company_ids: Sequence[UUID], at: datetime | None = None) -> dict[UUID, list[MeteredFeatureUsage]]:
    """`company_metered_usage` of many companies in a fixed number of queries
    (links, features, access rows, billing periods, meters), whatever their number."""
    at = at or timezone.now()
    company_ids = list(company_ids)
    products_of: dict[UUID, set] = defaultdict(set)
    for company_id, product_id in ProductLink.objects.filter(company_id__in=company_ids).values_list(
        "company_id", "product_id"
    ):
        products_of[company_id].add(product_id)
    features = list(
        Feature.objects.filter(product_id__in={p for ids in products_of.values() for p in ids}, kind=FeatureKind.METERED)
        .select_related("product")
        .order_by("product__code", "code")
    )
    access = {
        (row.company_id, row.feature_id): row
        for row in FeatureAccess.objects.filter(company_id__in=company_ids, feature__in=features)
    }
    billing_periods = billing_periods_at(company_ids=company_ids, at=at)
    periods = {
        (company_id, feature.id): period_for(
            feature.reset_period, at, company_id=company_id, billing_periods=billing_periods
        )
        for company_id in company_ids
        for feature in features
        if feature.product_id in products_of[company_id]
    }
    meters = {}
    if periods:
        rows = UsageMeter.objects.filter(
            company_id__in=company_ids,
            feature_id__in={feature.id for feature in features},
            period_start__in={period.start for period in periods.values()},
        ).values_list("company_id", "feature_id", "period_start", "value")
        meters = {(row[0], row[1], row[2]): row[3] for row in rows}
    features_by_id = {feature.id: feature for feature in features}
    result: dict[UUID, list[MeteredFeatureUsage]] = {company_id: [] for company_id in company_ids}
    for (company_id, feature_id), period in periods.items():
        feature = features_by_id[feature_id]
        row = access.get((company_id, feature_id))
        terms = row.effective_at(at) if row else None
        result[company_id].append(
            MeteredFeatureUsage(
                feature=feature,
                current_usage=meters.get((company_id, feature_id, period.start), 0),
                quantity_limit=terms.quantity_limit if terms else None,
                included_quantity=terms.included_quantity if terms else 0,
                is_enabled=bool(terms and terms.granted and terms.is_enabled),
                period_start=period.start,
                period_end=period.end,
            )
        )
    return result


USAGE_SERIES_BUCKETS = {"day": 30, "week": 12, "month": 12}


def _bucket_start(day, granularity: str):
    if granularity == "week":
        return day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    if granularity == "month":
        return day.replace(day=1)
    return day


def _bucket_starts(today, granularity: str, count: int) -> list:
    starts = [_bucket_start(today, granularity)]
    while len(starts) < count:
        previous = starts[-1] - timedelta(days=1)
        starts.append(_bucket_start(previous, granularity))
    return starts[::-1]


def usage_rollup_series(
    *, company_id: UUID, today: datetime | None = None
) -> dict[Feature, dict[str, list[tuple[Any, int]]]]:
    """Usage per metered feature of the company's products from the daily
    rollups (net of corrections, UTC days), bucketed by day (last 30 days),
    ISO week (last 12) and month (last 12), zeros included: one query for
    the rollups, one for the features."""
    from .models import UsageDailyRollup

    today = (today or timezone.now()).astimezone(UTC).date()
    starts = {granularity: _bucket_starts(today, granularity, count) for granularity, count in USAGE_SERIES_BUCKETS.items()}
    first_day = min(buckets[0] for buckets in starts.values())
    totals: dict[UUID, dict[str, dict]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for feature_id, day, quantity in UsageDailyRollup.objects.filter(
        company_id=company_id, day__gte=first_day, day__lte=today
    ).values_list("feature_id", "day", "quantity"):
        for granularity in starts:
            totals[feature_id][granularity][_bucket_start(day, granularity)] += quantity
    product_ids = ProductLink.objects.filter(company_id=company_id).values("product_id")
    features = Feature.objects.filter(
        Q(product_id__in=product_ids, kind=FeatureKind.METERED) | Q(id__in=list(totals))
    ).select_related("product").order_by("product__code", "code")
    return {
        feature: {
            granularity: [(start, int(totals[feature.id][granularity].get(start, 0))) for start in buckets]
            for granularity, buckets in starts.items()
        }
        for feature in features
    }


def meters_due_for_close(*, now: datetime, limit: int = 1000) -> list[UUID]:
    """Open meters whose period has ended (oldest first)."""
    return list(
        UsageMeter.objects.filter(closed_at__isnull=True, period_end__lte=now)
        .order_by("period_end")
        .values_list("id", flat=True)[:limit]
    )


# --- Dimensions and peak hours (the admin's usage panel) ------------------------------


@dataclass(frozen=True)
class DimensionShare:
    value: str  # "" = events without the key; rules.OTHER_VALUE = the rest
    quantity: int
    events: int


def dimension_breakdown(
    *, company_id: UUID, feature_id: UUID, dimension: str, days: int = 30, top: int = 10, now: datetime | None = None
) -> list[DimensionShare]:
    """A feature's usage over the last `days` UTC days per value of one
    dimension, from the dimension rollups: the `top` most frequent values
    (`rules.dimension_values_kept`), then `other`."""
    now = (now or timezone.now()).astimezone(UTC)
    since = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=days - 1)
    rows = (
        UsageDimensionRollup.objects.filter(
            company_id=company_id, feature_id=feature_id, dimension=dimension, period_start__gte=since
        )
        .values("value")
        .annotate(q=Sum("quantity"), n=Sum("events"))
        .order_by()
    )
    totals = {row["value"]: (row["n"], row["q"]) for row in rows}
    kept = dimension_values_kept(totals, limit=top)
    other = [0, 0]
    shares = []
    for value, (events, quantity) in totals.items():
        if value in kept:
            shares.append(DimensionShare(value=value, quantity=quantity, events=events))
        else:
            other[0] += quantity
            other[1] += events
    shares.sort(key=lambda share: (-share.events, -share.quantity, share.value))
    if other[1]:
        shares.append(DimensionShare(value=OTHER_VALUE, quantity=other[0], events=other[1]))
    return shares


def peak_hours(*, company_id: UUID, feature_id: UUID, days: int = 35, now: datetime | None = None) -> list[int]:
    """Usage per hour of the UTC day (24 totals, index = hour) over the last
    `days` days (at most the 35 the hourly rollups keep)."""
    now = now or timezone.now()
    since = max(hourly_cutoff(now), now - timedelta(days=days))
    by_hour = [0] * 24
    for hour, quantity in UsageHourlyRollup.objects.filter(
        company_id=company_id, feature_id=feature_id, hour__gte=since
    ).values_list("hour", "quantity"):
        by_hour[hour.astimezone(UTC).hour] += quantity
    return by_hour


def rollup_events_by_day(*, product_id: UUID, company_ids: Sequence[UUID], start, end) -> dict[UUID, dict]:
    """{company_id: {UTC day: usage events}} of the product's features on the
    days [start, end) (dates), from the daily rollups: one query over their
    (company, feature, day) index (insights' usage trend and recency)."""
    from .models import UsageDailyRollup

    rows = (
        UsageDailyRollup.objects.filter(
            company_id__in=list(company_ids), feature__product_id=product_id, day__gte=start, day__lt=end, events__gt=0
        )
        .values("company_id", "day")
        .annotate(total=Sum("events"))
        .order_by()
    )
    result: dict[UUID, dict] = defaultdict(dict)
    for row in rows:
        result[row["company_id"]][row["day"]] = int(row["total"] or 0)
    return dict(result)


def usage_deliveries_retrying_count() -> int:
    """Usage events whose delivery to Stripe failed at least once and is
    being retried (pending, attempts > 0): one count over the delivery
    queue's partial index (the admin dashboard)."""
    from .models import StripeDeliveryStatus

    return UsageEvent.objects.filter(
        stripe_delivery_status=StripeDeliveryStatus.PENDING, stripe_delivery_attempts__gt=0
    ).count()
