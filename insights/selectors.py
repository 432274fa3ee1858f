"""Reads of the insights app: statistics from metering's daily rollups
(SPEC §8). These only show numbers, so they may read a replica
(`config.db_router.read_from_replica`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from uuid import UUID

from django.db.models import F, Q, Sum
from django.db.models.functions import TruncMonth, TruncWeek
from django.utils import timezone

from config.api.pagination import Page, bad_cursor, decode_cursor, encode_cursor
from config.db_router import read_from_replica
from config.errors import BadRequest
from entitlements.models import Feature
from metering.models import UsageDailyRollup, UsageDimensionRollup, UsageHourlyRollup
from metering.rules import OTHER_VALUE, dimension_values_kept, hourly_cutoff, unknown_feature, utc_hour

GroupBy = Literal["day", "week", "month"]
GROUP_BY_CHOICES = ("day", "week", "month")
UsageGroupBy = Literal["hour", "day", "week", "month"]
USAGE_GROUP_BY_CHOICES = ("hour", "day", "week", "month")
STATS_MAX_LIMIT = 1000


@dataclass(frozen=True)
class UsageStat:
    period_start: datetime
    feature_code: str
    quantity: int
    billable_quantity: int
    events: int
    # With `dimension`: the value ("" = events without that metadata key,
    # the API's null; "other" = the values beyond the period's top 100).
    dimension_value: str | None = None


def period_floor(day: date, group_by: GroupBy) -> date:
    """The first day of the period (UTC day, ISO week from Monday, calendar
    month) that contains `day`."""
    if group_by == "week":
        return day - timedelta(days=day.weekday())
    if group_by == "month":
        return day.replace(day=1)
    return day


def period_next(start: date, group_by: GroupBy) -> date:
    if group_by == "week":
        return start + timedelta(days=7)
    if group_by == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


def _days(start: datetime, end: datetime) -> tuple[date, date]:
    """[from, to) as rollup days: `from`'s UTC day, and `to`'s day, or the
    day after it when `to` is not a UTC midnight (a day counts whole)."""
    first = start.astimezone(UTC).date()
    end_utc = end.astimezone(UTC)
    last = end_utc.date()
    if end_utc != datetime(last.year, last.month, last.day, tzinfo=UTC):
        last += timedelta(days=1)
    return first, last


def usage_stats(
    *,
    product_id: UUID,
    company_id: UUID,
    start: datetime,
    end: datetime,
    group_by: UsageGroupBy = "day",
    feature_code: str | None = None,
    dimension: str | None = None,
    limit: int = STATS_MAX_LIMIT,
    cursor: str | None = None,
    now: datetime | None = None,
) -> Page:
    """One page of a company's usage per period and feature (and, with
    `dimension`, per value of that metadata key), oldest first, from the
    rollups only: one query (an index range scan) whatever the number of raw
    events. `groupBy=hour` reads the hourly rollups, kept for 35 days (400
    for a `from` before that); `dimension` must be one of the feature's
    dimensions (400) and needs `featureCode`. `company_id` must be visible to
    the product (the caller checks)."""
    limit = max(1, min(int(limit), STATS_MAX_LIMIT))
    now = now or timezone.now()
    if group_by == "hour":
        cutoff = hourly_cutoff(now)
        if start < cutoff:
            raise BadRequest.for_field(
                "from", f"Hourly totals are kept for the last 35 days: from must be at or after {cutoff.isoformat()}."
            )
    if dimension is not None:
        if not feature_code:
            raise BadRequest.for_field("featureCode", "Give the feature whose dimension to break down by.")
        feature = Feature.objects.filter(product_id=product_id, code=feature_code).values("id", "dimensions").first()
        if feature is None:
            raise unknown_feature(feature_code)
        if dimension not in (feature["dimensions"] or []):
            known = ", ".join(feature["dimensions"] or []) or "none"
            raise BadRequest.for_field(
                "dimension", f"Unknown dimension {dimension!r} of feature {feature_code!r} (its dimensions: {known})."
            )
        return _dimension_stats(
            company_id=company_id, feature_id=feature["id"], feature_code=feature_code, dimension=dimension,
            start=start, end=end, group_by=group_by, limit=limit, cursor=cursor,
        )
    if group_by == "hour":
        return _hourly_stats(
            product_id=product_id, company_id=company_id, start=start, end=end, feature_code=feature_code,
            limit=limit, cursor=cursor,
        )
    first, last = _days(start, end)
    ordering = [f"stats:{group_by}", "featureCode"]
    rows = UsageDailyRollup.objects.filter(
        company_id=company_id, feature__product_id=product_id, day__gte=first, day__lt=last
    )
    if feature_code is not None:
        rows = rows.filter(feature__code=feature_code)
    if cursor:
        after_start, after_code = _cursor_values(cursor, ordering)
        following = period_next(after_start, group_by)
        rows = rows.filter(Q(day__gte=following) | Q(day__gte=after_start, day__lt=following, feature__code__gt=after_code))
    period = {"day": F("day"), "week": TruncWeek("day"), "month": TruncMonth("day")}[group_by]
    grouped = (
        rows.annotate(period=period)
        .values("period", code=F("feature__code"))
        .annotate(q=Sum("quantity"), b=Sum("billable_quantity"), n=Sum("events"))
        .order_by("period", "code")
    )
    with read_from_replica():
        found = list(grouped[: limit + 1])
    has_more = len(found) > limit
    items = [
        UsageStat(
            period_start=_midnight(row["period"]),
            feature_code=row["code"],
            quantity=row["q"],
            billable_quantity=row["b"],
            events=row["n"],
        )
        for row in found[:limit]
    ]
    next_cursor = None
    if has_more:
        last_item = items[-1]
        next_cursor = encode_cursor([last_item.period_start.date().isoformat(), last_item.feature_code], ordering)
    return Page(items=items, has_more=has_more, next_cursor=next_cursor)


def _hours(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[from, to) as whole UTC hours (a partial hour counts whole)."""
    first, last = utc_hour(start), utc_hour(end)
    if last != end.astimezone(UTC):
        last += timedelta(hours=1)
    return first, last


def _hourly_stats(
    *, product_id: UUID, company_id: UUID, start: datetime, end: datetime, feature_code: str | None, limit: int,
    cursor: str | None,
) -> Page:
    first, last = _hours(start, end)
    ordering = ["stats:hour", "featureCode"]
    rows = UsageHourlyRollup.objects.filter(
        company_id=company_id, feature__product_id=product_id, hour__gte=first, hour__lt=last
    )
    if feature_code is not None:
        rows = rows.filter(feature__code=feature_code)
    if cursor:
        after_hour, after_code = _cursor_moment(cursor, ordering)
        rows = rows.filter(Q(hour__gt=after_hour) | Q(hour=after_hour, feature__code__gt=after_code))
    grouped = (
        rows.values("hour", code=F("feature__code"))
        .annotate(q=Sum("quantity"), b=Sum("billable_quantity"), n=Sum("events"))
        .order_by("hour", "code")
    )
    with read_from_replica():
        found = list(grouped[: limit + 1])
    items = [
        UsageStat(
            period_start=_utc(row["hour"]), feature_code=row["code"], quantity=row["q"],
            billable_quantity=row["b"], events=row["n"],
        )
        for row in found[:limit]
    ]
    next_cursor = None
    if len(found) > limit:
        next_cursor = encode_cursor([items[-1].period_start.isoformat(), items[-1].feature_code], ordering)
    return Page(items=items, has_more=len(found) > limit, next_cursor=next_cursor)


def _value_order(value: str) -> tuple:
    """Rows of one period: by value, "" (no value) first, `other` last."""
    return (value == OTHER_VALUE, value)


def _dimension_stats(
    *, company_id: UUID, feature_id: UUID, feature_code: str, dimension: str, start: datetime, end: datetime,
    group_by: UsageGroupBy, limit: int, cursor: str | None,
) -> Page:
    """Per period and value: each UTC day's rows are folded to the day's 100
    most frequent values (`metering.rules.dimension_values_kept`, the rule
    the stored fold applies, so the answer is the same before and after
    `metering.compact_rollups` ran), then each period's to its own top 100;
    the rest is `other`. Hours are ranked by their whole day."""
    if group_by == "hour":
        low, high = _hours(start, end)
        fetch_from, fetch_to = _midnight(low), _midnight(high - timedelta(microseconds=1)) + timedelta(days=1)
    else:
        first, last = _days(start, end)
        low, high = _midnight(first), _midnight(last)
        fetch_from, fetch_to = low, high
    ordering = [f"stats:{group_by}:dimension", "dimensionValue"]
    after = None
    if cursor:
        after_period, after_value = _cursor_moment(cursor, ordering)
        after = (after_period, _value_order(after_value))
        fetch_from = max(fetch_from, _midnight(after_period))
    rows = (
        UsageDimensionRollup.objects.filter(
            company_id=company_id, feature_id=feature_id, dimension=dimension,
            period_start__gte=fetch_from, period_start__lt=fetch_to,
        )
        .order_by("period_start", "value")
        .values_list("period_start", "value", "quantity", "billable_quantity", "events")
    )

    def output_period(moment: datetime) -> datetime:
        if group_by == "hour":
            return moment
        return _midnight(period_floor(moment.date(), group_by))

    items: list[UsageStat] = []
    pending: dict[datetime, dict[str, list[int]]] = {}  # output period → value → [q, b, n]

    def flush(done_before: datetime | None) -> None:
        for period in sorted(p for p in pending if done_before is None or p < done_before):
            totals = pending.pop(period)
            kept = dimension_values_kept({value: (t[2], t[0]) for value, t in totals.items()})
            folded: dict[str, list[int]] = {}
            for value, (quantity, billable, events) in totals.items():
                target = folded.setdefault(value if value in kept else OTHER_VALUE, [0, 0, 0])
                target[0] += quantity
                target[1] += billable
                target[2] += events
            for value in sorted(folded, key=_value_order):
                if after is not None and (period, _value_order(value)) <= after:
                    continue
                quantity, billable, events = folded[value]
                items.append(
                    UsageStat(
                        period_start=period, feature_code=feature_code, quantity=quantity,
                        billable_quantity=billable, events=events, dimension_value=value,
                    )
                )

    def add_day(day_rows: list) -> None:
        day_totals: dict[str, tuple[int, int]] = {}
        for _moment, value, quantity, _billable, events in day_rows:
            seen = day_totals.get(value, (0, 0))
            day_totals[value] = (seen[0] + events, seen[1] + quantity)
        kept = dimension_values_kept(day_totals)
        for moment, value, quantity, billable, events in day_rows:
            if not low <= moment < high:
                continue  # an hour outside the range, fetched to rank its day
            target = pending.setdefault(output_period(moment), {}).setdefault(
                value if value in kept else OTHER_VALUE, [0, 0, 0]
            )
            target[0] += quantity
            target[1] += billable
            target[2] += events

    with read_from_replica():
        day, day_rows = None, []
        for period_start, value, quantity, billable, events in rows.iterator(chunk_size=2000):
            moment = _utc(period_start)
            if moment.date() != day:
                if day_rows:
                    add_day(day_rows)
                    # Periods that end by this day are complete.
                    flush(output_period(moment) if group_by != "hour" else _midnight(moment.date()))
                    if len(items) > limit:
                        break
                day, day_rows = moment.date(), []
            day_rows.append((moment, value, quantity, billable, events))
        else:
            if day_rows:
                add_day(day_rows)
            flush(None)
    has_more = len(items) > limit
    items = items[:limit]
    next_cursor = None
    if has_more:
        last_item = items[-1]
        next_cursor = encode_cursor([last_item.period_start.isoformat(), last_item.dimension_value], ordering)
    return Page(items=items, has_more=has_more, next_cursor=next_cursor)


def _utc(value) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _cursor_moment(cursor: str, ordering: list[str]) -> tuple[datetime, str]:
    moment, key = decode_cursor(cursor, ordering)
    try:
        return _utc(datetime.fromisoformat(moment)), str(key)
    except (TypeError, ValueError):
        raise bad_cursor() from None


def _midnight(value) -> datetime:
    if isinstance(value, datetime):
        value = value.date()
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _cursor_values(cursor: str, ordering: list[str]) -> tuple[date, str]:
    day, code = decode_cursor(cursor, ordering)
    try:
        return date.fromisoformat(day), str(code)
    except (TypeError, ValueError):
        raise bad_cursor() from None


# --- Revenue -------------------------------------------------------------------------


def revenue_periods(*, product_id: UUID, start: datetime, end: datetime, interval: GroupBy = "month") -> list[dict]:
    """Per period of [start, end) (UTC days; ISO weeks; months), from the daily
    revenue snapshots of the product's accounts: closing `mrr`, the movements
    (new, expansion, contraction, churned, reactivation: they sum to the change
    from the previous period's closing MRR), customers (accounts with MRR > 0),
    churn rates (0–100, of the opening customers / MRR), ARPU (half-up), and
    credits purchased, used and their utilisation (from the credits ledger).
    Two queries."""
    from decimal import ROUND_HALF_UP, Decimal

    from .models import RevenueSnapshot
    from .revenue import movement

    first, last = _days(start, end)
    with read_from_replica():
        rows = list(
            RevenueSnapshot.objects.filter(product_id=product_id, day__lt=last)
            .order_by("account_id", "day")
            .values_list("account_id", "day", "mrr")
        )
    by_account: dict = {}
    for account_id, day, mrr in rows:
        by_account.setdefault(account_id, []).append((day, mrr))
    credit_days = _credit_days(product_id=product_id, first=first, last=last)
    periods = []
    period_start = period_floor(first, interval)
    while period_start < last:
        period_end = period_next(period_start, interval)
        lower, upper = max(period_start, first), min(period_end, last)
        totals = {"mrr": 0, "new": 0, "expansion": 0, "contraction": 0, "churned": 0, "reactivation": 0}
        opening_mrr = active = new_customers = churned_customers = opening_customers = 0
        for history in by_account.values():
            opening = closing = 0
            had_before = False
            for day, mrr in history:
                if day < lower:
                    opening = closing = mrr
                    had_before = had_before or mrr > 0
                elif day < upper:
                    closing = mrr
            change = movement(opening=opening, closing=closing, had_mrr_before=had_before)
            totals["mrr"] += closing
            opening_mrr += opening
            opening_customers += opening > 0
            active += closing > 0
            if change:
                kind, amount = change
                totals[kind] += abs(amount)
                new_customers += kind == "new"
                churned_customers += kind == "churned"
        periods.append(
            {
                "period_start": _midnight(period_start),
                "mrr": totals["mrr"],
                "new_mrr": totals["new"],
                "expansion_mrr": totals["expansion"],
                "contraction_mrr": totals["contraction"],
                "churned_mrr": totals["churned"],
                "reactivation_mrr": totals["reactivation"],
                "active_customers": active,
                "new_customers": new_customers,
                "churned_customers": churned_customers,
                "customer_churn_rate": _rate(churned_customers, opening_customers),
                "revenue_churn_rate": _rate(totals["churned"] + totals["contraction"], opening_mrr),
                "arpu": int((Decimal(totals["mrr"]) / active).to_integral_value(ROUND_HALF_UP)) if active else 0,
                **_credit_figures(credit_days, lower, upper),
            }
        )
        period_start = period_end
    return periods


def _credit_days(*, product_id: UUID, first: date, last: date) -> dict[date, dict[str, int]]:
    """{UTC day: {statement column: credits}} of the product's ledger in
    [first, last): one query; kinds map to columns as in the statement
    (`billing.services.statements.LEDGER_COLUMNS`: used = usage + fallback)."""
    from billing.services.statements import LEDGER_COLUMNS
    from credits.selectors import ledger_totals_by_day

    with read_from_replica():
        totals = ledger_totals_by_day(product_id=product_id, start=_midnight(first), end=_midnight(last))
    days: dict[date, dict[str, int]] = {}
    for (day, kind), amount in totals.items():
        column = LEDGER_COLUMNS.get(kind)
        if column in ("purchased", "granted", "used"):
            figures = days.setdefault(day, {"purchased": 0, "granted": 0, "used": 0})
            figures[column] += -amount if column == "used" else amount
    return days


def _credit_figures(days: dict, lower: date, upper: date) -> dict:
    """Credits purchased and used in [lower, upper), and utilisation: used ÷
    the credits that came in (purchased + granted) × 100, two decimals (0 when
    none came in; above 100 when older credits were used)."""
    purchased = granted = used = 0
    for day, figures in days.items():
        if lower <= day < upper:
            purchased += figures["purchased"]
            granted += figures["granted"]
            used += figures["used"]
    return {
        "credits_purchased": purchased,
        "credits_used": used,
        "credit_utilization": _rate(used, purchased + granted),
    }


def _rate(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


# --- Health ----------------------------------------------------------------------------


def account_health_map(account_ids) -> dict:
    """{account_id: AccountHealth} of the given accounts (those never
    computed are absent). One query; for segments, the company list and page."""
    from .models import AccountHealth

    ids = list(account_ids)
    if not ids:
        return {}
    return {health.account_id: health for health in AccountHealth.objects.filter(account_id__in=ids)}


HEALTH_HISTORY_DAYS = 365


def account_health_detail(*, product_id: UUID, company_id) -> dict:
    """What GET /companies/{id}/health answers for the company's account with
    the product: the stored score (computed now, once, if the nightly job has
    not reached the account yet) and the last year's daily history, oldest
    first. 404 for a company the product does not see."""
    from companies.models import Account
    from companies.selectors import company_id_get_visible, company_not_found

    from .models import AccountHealth, HealthSnapshot
    from .services import health_compute

    visible_id = company_id_get_visible(product_id=product_id, company_id=company_id)
    account_id = Account.objects.filter(company_id=visible_id, product_id=product_id).values_list("pk", flat=True).first()
    if account_id is None:
        raise company_not_found()
    health = AccountHealth.objects.filter(account_id=account_id).first()
    if health is None:
        health_compute(account_ids=[account_id])
        health = AccountHealth.objects.get(account_id=account_id)
    since = health.computed_at.astimezone(UTC).date() - timedelta(days=HEALTH_HISTORY_DAYS)
    history = list(
        HealthSnapshot.objects.filter(account_id=account_id, date__gt=since).order_by("date").values("date", "score", "risk_level")
    )
    return {
        "score": health.score,
        "risk_level": health.risk_level,
        "components": health.components,
        "computed_at": health.computed_at,
        "history": history,
    }


# --- Segments ------------------------------------------------------------------------


def segment_list(*, product_id: UUID):
    """The product's segments by slug (their parent loaded with them)."""
    from .models import Segment

    return Segment.objects.filter(product_id=product_id).select_related("parent").order_by("slug", "id")


def segment_get(*, product_id: UUID, slug: str):
    """The product's segment `slug`, or 404 (another product's segment does not exist for this key)."""
    from config.errors import NotFound

    from .models import Segment

    segment = Segment.objects.filter(product_id=product_id, slug=slug).first()
    if segment is None:
        raise NotFound("Segment not found.")
    return segment


def segment_companies(*, segment):
    """The segment's member companies at its last sync, by name, with their
    account with the segment's product (for the company answer); only those
    still linked to the product."""
    from django.db.models import Exists, OuterRef

    from companies.selectors import companies_visible, with_accounts

    from .models import SegmentMembership

    members = companies_visible(product_id=segment.product_id).filter(
        Exists(SegmentMembership.objects.filter(segment_id=segment.pk, company_id=OuterRef("pk")))
    )
    return with_accounts(members.order_by("name", "id"), product_id=segment.product_id)
