"""Usage periods: each reset period's boundaries in UTC, billing periods, and
what happens to meters when a period ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone as dt_timezone
from unittest import mock

import pytest

from metering.selectors import current_usage_read as current_usage
from metering.models import UsageMeter, UsageSnapshot
from metering.periods import EPOCH, Period, period_for
from metering.services import billing_periods_set, meters_close_due, usage_track
from metering.tasks import close_periods


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def frozen_now():
    """frozen_now(moment): make django.utils.timezone.now() return `moment`."""
    patcher = None

    def freeze(moment: datetime):
        nonlocal patcher
        if patcher:
            patcher.stop()
        patcher = mock.patch("django.utils.timezone.now", return_value=moment)
        patcher.start()

    yield freeze
    if patcher:
        patcher.stop()


class TestPeriodFor:
    @pytest.mark.parametrize(
        ("reset_period", "moment", "start", "end"),
        [
            ("daily", utc(2026, 3, 14, 23, 59, 59, 999999), utc(2026, 3, 14), utc(2026, 3, 15)),
            ("daily", utc(2026, 3, 15), utc(2026, 3, 15), utc(2026, 3, 16)),
            ("daily", utc(2026, 12, 31, 12), utc(2026, 12, 31), utc(2027, 1, 1)),
            # ISO weeks: Monday 00:00 UTC. 2026-03-15 is a Sunday, 03-16 a Monday.
            ("weekly", utc(2026, 3, 15, 23, 59), utc(2026, 3, 9), utc(2026, 3, 16)),
            ("weekly", utc(2026, 3, 16), utc(2026, 3, 16), utc(2026, 3, 23)),
            ("weekly", utc(2026, 12, 31), utc(2026, 12, 28), utc(2027, 1, 4)),
            ("monthly", utc(2026, 1, 31, 23, 59), utc(2026, 1, 1), utc(2026, 2, 1)),
            ("monthly", utc(2026, 2, 1), utc(2026, 2, 1), utc(2026, 3, 1)),
            ("monthly", utc(2026, 12, 15), utc(2026, 12, 1), utc(2027, 1, 1)),
            ("monthly", utc(2028, 2, 29, 12), utc(2028, 2, 1), utc(2028, 3, 1)),
            ("yearly", utc(2026, 12, 31, 23, 59), utc(2026, 1, 1), utc(2027, 1, 1)),
            ("yearly", utc(2027, 1, 1), utc(2027, 1, 1), utc(2028, 1, 1)),
        ],
    )
    def test_boundaries(self, reset_period, moment, start, end):
        assert period_for(reset_period, moment) == Period(start, end)

    def test_never_is_one_period_forever(self):
        assert period_for("never", utc(2026, 5, 1)) == Period(EPOCH, None)
        assert period_for("", utc(2030, 5, 1)) == Period(EPOCH, None)

    def test_periods_are_in_utc_whatever_the_offset_of_the_moment(self):
        berlin_midnight = datetime(2026, 3, 1, 0, 30, tzinfo=dt_timezone(timedelta(hours=1)))  # 2026-02-28 23:30Z
        assert period_for("monthly", berlin_midnight) == Period(utc(2026, 2, 1), utc(2026, 3, 1))
        assert period_for("daily", berlin_midnight).start == utc(2026, 2, 28)

    @pytest.mark.django_db
    def test_billing_period_defaults_to_the_calendar_month(self, company):
        assert period_for("billing_period", utc(2026, 4, 20), company_id=company.id) == Period(
            utc(2026, 4, 1), utc(2026, 5, 1)
        )

    @pytest.mark.django_db
    def test_billing_period_follows_the_periods_billing_reports(self, company):
        billing_periods_set(company_id=company.id, periods=[(utc(2026, 4, 15, 10), utc(2026, 5, 15, 10))])
        assert period_for("billing_period", utc(2026, 5, 2), company_id=company.id) == Period(
            utc(2026, 4, 15, 10), utc(2026, 5, 15, 10)
        )
        # A period that does not contain the moment is ignored.
        assert period_for("billing_period", utc(2026, 6, 2), company_id=company.id) == Period(utc(2026, 6, 1), utc(2026, 7, 1))

    @pytest.mark.django_db
    def test_billing_period_without_answer_falls_back(self, company):
        billing_periods_set(company_id=company.id, periods=[(utc(2026, 2, 5), utc(2026, 3, 5))])
        billing_periods_set(company_id=company.id, periods=[])  # the subscription ended
        assert period_for("billing_period", utc(2026, 2, 10), company_id=company.id) == Period(utc(2026, 2, 1), utc(2026, 3, 1))

    def test_naive_datetimes_are_refused(self):
        with pytest.raises(ValueError):
            period_for("daily", datetime(2026, 1, 1))


def track(product, company, code, quantity=1, **kwargs):
    return usage_track(product_id=product.id, company_id=company.id, feature_code=code, quantity=quantity, **kwargs)


@pytest.mark.django_db
class TestMetersAcrossPeriods:
    @pytest.mark.parametrize(
        ("reset_period", "before", "after"),
        [
            ("daily", utc(2026, 3, 14, 23, 59), utc(2026, 3, 15, 0, 0, 1)),
            ("weekly", utc(2026, 3, 15, 23, 59), utc(2026, 3, 16, 0, 1)),
            ("monthly", utc(2026, 3, 31, 23, 59), utc(2026, 4, 1, 0, 1)),
            ("yearly", utc(2026, 12, 31, 23, 59), utc(2027, 1, 1, 0, 1)),
        ],
    )
    def test_new_period_starts_at_zero_and_the_old_one_is_closed_once(
        self, product, company, make_metered, frozen_now, reset_period, before, after
    ):
        feature, _ = make_metered("calls", company=company, reset_period=reset_period)
        frozen_now(before)
        assert track(product, company, "calls", 7).current_usage == 7
        assert current_usage(company_id=company.id, features=[feature], at=before) == {feature.id: 7}

        frozen_now(after)
        # Reading after the boundary already shows the new period's zero.
        assert current_usage(company_id=company.id, features=[feature], at=after) == {feature.id: 0}
        result = track(product, company, "calls", 2)
        assert (result.previous_usage, result.current_usage) == (0, 2)

        old, new = UsageMeter.objects.filter(feature=feature).order_by("period_start")
        assert old.value == 7 and old.closed_at == after
        assert new.value == 2 and new.closed_at is None
        close = UsageSnapshot.objects.get(meter=old)
        assert (close.snapshot_type, close.absolute_value) == ("period_close", 7)
        # The close job finds nothing more to do.
        assert meters_close_due(now=after) == 0
        assert UsageSnapshot.objects.filter(snapshot_type="period_close").count() == 1

    def test_never_resetting_feature_keeps_counting(self, product, company, make_metered, frozen_now):
        make_metered("storage", company=company, reset_period="never")
        frozen_now(utc(2026, 1, 5))
        track(product, company, "storage", 5)
        frozen_now(utc(2026, 6, 5))
        assert track(product, company, "storage", 5).current_usage == 10
        assert UsageMeter.objects.get(feature__code="storage").period_end is None

    def test_backdated_event_lands_in_the_earlier_period(self, product, company, make_metered, frozen_now):
        feature, _ = make_metered("calls", company=company, reset_period="monthly", limit=10)
        frozen_now(utc(2026, 4, 3, 12))
        track(product, company, "calls", 4)
        result = track(product, company, "calls", 9, timestamp=utc(2026, 3, 30, 8))
        assert (result.previous_usage, result.current_usage) == (0, 9)

        march = UsageMeter.objects.get(feature=feature, period_start=utc(2026, 3, 1))
        april = UsageMeter.objects.get(feature=feature, period_start=utc(2026, 4, 1))
        assert (march.value, april.value) == (9, 4)
        # The current period (what feature checks show) is unaffected.
        assert current_usage(company_id=company.id, features=[feature], at=utc(2026, 4, 3, 12)) == {feature.id: 4}
        # The limit applies per period: March has room for 1 more, April for 6.
        with pytest.raises(Exception) as refused:
            track(product, company, "calls", 2, timestamp=utc(2026, 3, 31))
        assert refused.value.details == {"currentUsage": 9, "quantityLimit": 10, "requested": 2}

    def test_backdating_into_a_period_not_seen_before_does_not_close_it_early(
        self, product, company, make_metered, frozen_now
    ):
        feature, _ = make_metered("calls", company=company, reset_period="daily")
        frozen_now(utc(2026, 4, 3, 12))
        track(product, company, "calls", 1, timestamp=utc(2026, 4, 1, 9))
        april_first = UsageMeter.objects.get(feature=feature, period_start=utc(2026, 4, 1))
        assert april_first.closed_at is None and april_first.value == 1
        # The close job closes it later, with its total.
        assert close_periods.delay().get() == 1
        assert UsageSnapshot.objects.get(meter=april_first).absolute_value == 1

    def test_close_job_closes_ended_periods_proactively(self, product, company, make_metered, frozen_now):
        feature, _ = make_metered("calls", company=company, reset_period="daily")
        frozen_now(utc(2026, 4, 3, 12))
        track(product, company, "calls", 3)
        assert meters_close_due(now=utc(2026, 4, 3, 23)) == 0
        assert meters_close_due(now=utc(2026, 4, 4, 0)) == 1
        assert meters_close_due(now=utc(2026, 4, 4, 0)) == 0
        snapshot = UsageSnapshot.objects.get(snapshot_type="period_close")
        assert snapshot.absolute_value == 3
        assert snapshot.created_by == "system:metering.close_periods"

    def test_billing_period_follows_the_subscription(self, product, company, make_metered, frozen_now):
        feature, _ = make_metered("calls", company=company, reset_period="billing_period")
        billing_periods_set(company_id=company.id, periods=[(utc(2026, 4, 15), utc(2026, 5, 15))])
        frozen_now(utc(2026, 5, 2))
        track(product, company, "calls", 3)
        meter = UsageMeter.objects.get(feature=feature)
        assert (meter.period_start, meter.period_end) == (utc(2026, 4, 15), utc(2026, 5, 15))
        frozen_now(utc(2026, 5, 20))
        assert track(product, company, "calls", 1).current_usage == 1  # calendar month after the subscription


def test_close_periods_retries_transient_errors_only():
    """A lost connection or a deadlock is retried; a bug fails at once
    instead of failing the same way five more times."""
    from django.db import OperationalError

    with mock.patch("metering.tasks.meters_close_due", side_effect=ValueError("a bug")) as close:
        with pytest.raises(ValueError):
            close_periods.apply(throw=True)
    assert close.call_count == 1
    from celery.exceptions import Retry

    with mock.patch("metering.tasks.meters_close_due", side_effect=OperationalError("connection lost")):
        with pytest.raises(Retry):  # eager mode: the retry is scheduled, not run
            close_periods.apply(throw=True)
