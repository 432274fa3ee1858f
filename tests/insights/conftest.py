"""Fixtures of the insights tests: a company of the `product` fixture with
two metered features (`ai_credit`: monthly, limit 50, 5 included;
`messages`: unlimited)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC

import pytest

from metering.models import UsageDailyRollup, UsageEvent
from tests.factories.companies import CompanyFactory, ProductLinkFactory
from tests.factories.entitlements import FeatureAccessFactory, MeteredFeatureFactory


@pytest.fixture
def company(product):
    company = CompanyFactory(name="Acme Inc", short_id="acme-inc")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    return company


@pytest.fixture
def features(product, company):
    limited = MeteredFeatureFactory(product=product, code="ai_credit", reset_period="monthly")
    unlimited = MeteredFeatureFactory(product=product, code="messages", reset_period="monthly")
    FeatureAccessFactory(company=company, feature=limited, quantity_limit=50, included_quantity=5)
    FeatureAccessFactory(company=company, feature=unlimited, quantity_limit=None, included_quantity=0)
    return limited, unlimited


def events_summary() -> dict:
    """(company, feature, UTC day) → (Σ quantity, Σ billable_delta, count), from the raw events."""
    totals: dict = defaultdict(lambda: [0, 0, 0])
    for company_id, feature_id, event_time, quantity, billable in UsageEvent.objects.values_list(
        "company_id", "feature_id", "event_time", "quantity", "billable_delta"
    ):
        total = totals[(company_id, feature_id, event_time.astimezone(UTC).date())]
        total[0] += quantity
        total[1] += billable
        total[2] += 1
    return {key: tuple(value) for key, value in totals.items()}


def rollups_summary() -> dict:
    return {
        (company_id, feature_id, day): (quantity, billable, events)
        for company_id, feature_id, day, quantity, billable, events in UsageDailyRollup.objects.values_list(
            "company_id", "feature_id", "day", "quantity", "billable_quantity", "events"
        )
    }
