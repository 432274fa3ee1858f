"""Fixtures of the usage tests: a company linked to the `api` fixture's
product, with access to a monthly metered feature `ai_credit`."""

from __future__ import annotations

import pytest

from entitlements.models import Feature

from tests.factories.companies import CompanyFactory, ProductLinkFactory
from tests.factories.entitlements import FeatureAccessFactory, MeteredFeatureFactory


@pytest.fixture
def company(product):
    company = CompanyFactory(name="Acme Inc", short_id="acme-inc")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    return company


@pytest.fixture
def feature(product):
    return MeteredFeatureFactory(
        product=product, code="ai_credit", name="AI credits", unit="credit", stripe_meter_event_name="ai_credit"
    )


@pytest.fixture
def access(company, feature):
    return FeatureAccessFactory(company=company, feature=feature, quantity_limit=100, included_quantity=10)


@pytest.fixture
def make_metered(product):
    """make_metered(code, reset_period=..., limit=..., included=..., company=...) → (feature, access)."""

    def make(code, *, company, reset_period="monthly", limit=None, included=0, meter_event="", **access_kwargs):
        feature = Feature.objects.filter(product=product, code=code).first() or MeteredFeatureFactory(
            product=product, code=code, reset_period=reset_period, stripe_meter_event_name=meter_event
        )
        access = FeatureAccessFactory(
            company=company, feature=feature, quantity_limit=limit, included_quantity=included, **access_kwargs
        )
        return feature, access

    return make
