"""Reconciliation of delivered usage with Stripe's meter event summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from billing.models import MeterDrift
from billing.services.delivery import deliver_pending_usage
from billing.services.reconciliation import default_window, meters_reconcile
from tests.billing.conftest import API_KEY, seed_usage_events

pytestmark = pytest.mark.django_db


def window():
    now = timezone.now()
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return start, start + timedelta(hours=3)


def test_no_drift_when_stripe_agrees(billed_company, fake_stripe, stripe_catalog):
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 12, billable_delta=3)
    deliver_pending_usage()
    start, end = window()

    result = meters_reconcile(window_start=start, window_end=end)

    assert (result.checked, result.drifting) == (1, 0)
    assert not MeterDrift.objects.exists()


def test_drift_is_recorded_and_resolved(billed_company, fake_stripe, stripe_catalog):
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 5)
    deliver_pending_usage()
    customer = billed_company.billing_profiles.get().stripe_customer_id
    # Someone sent usage to the same meter outside SaaSDesk.
    stripe = fake_stripe.client(api_key=API_KEY)
    stripe.v1.billing.meter_events.create(
        params={"event_name": "ai_credit", "identifier": "manual-1", "payload": {"stripe_customer_id": customer, "value": "3"}}
    )
    start, end = window()

    result = meters_reconcile(window_start=start, window_end=end)

    assert result.drifting == 1
    drift = MeterDrift.objects.get()
    assert (drift.delivered_value, drift.stripe_value, drift.difference) == (5, 8, -3)
    assert drift.company == billed_company
    assert drift.resolved_at is None

    # Running it again updates the same row.
    meters_reconcile(window_start=start, window_end=end)
    assert MeterDrift.objects.count() == 1

    stripe.v1.billing.meter_event_adjustments.create(
        params={"event_name": "ai_credit", "type": "cancel", "cancel": {"identifier": "manual-1"}}
    )
    result = meters_reconcile(window_start=start, window_end=end)

    assert result.resolved == 1
    drift.refresh_from_db()
    assert drift.resolved_at is not None
    assert drift.difference == 0


def test_missing_meter_at_stripe_is_drift(company, fake_stripe, stripe_catalog):
    from tests.factories.billing import BillingProfileFactory

    BillingProfileFactory(company=company, stripe_customer_id=fake_stripe.create_customer()["id"])
    seed_usage_events(company, stripe_catalog.ai_credit, 2)
    deliver_pending_usage()
    start, end = window()

    meters_reconcile(window_start=start, window_end=end)

    drift = MeterDrift.objects.get()
    assert drift.stripe_value is None
    assert "No active Stripe meter" in drift.note


def test_default_window_is_yesterday():
    start, end = default_window(now=datetime(2026, 3, 10, 15, 30, tzinfo=UTC))

    assert (start, end) == (datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC))


def test_without_key_does_nothing(stripe_unconfigured, db):
    assert meters_reconcile().configured is False


def test_celery_task(billed_company, fake_stripe, stripe_catalog):
    from billing.tasks import reconcile_meters

    assert reconcile_meters.delay() is not None


def test_management_command(billed_company, fake_stripe, stripe_catalog, capsys):
    from django.core.management import call_command

    seed_usage_events(billed_company, stripe_catalog.ai_credit, 2)
    deliver_pending_usage()
    today = timezone.now().date()

    call_command("reconcile_meters", "--start", today.isoformat(), "--end", (today + timedelta(days=1)).isoformat())

    assert "checked=1 drifting=0" in capsys.readouterr().out
