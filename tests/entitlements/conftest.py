"""Fixtures of the entitlements tests: the demo-like catalog of `product`
(chat) and companies linked to it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from companies.models import Product
from entitlements.models import Feature, Tier
from tests.factories.companies import CompanyFactory, ProductLinkFactory

DEMO_CATALOG = Path(__file__).resolve().parents[2] / "entitlements" / "catalogs" / "demo.json"


@pytest.fixture
def catalog(product):
    """The shipped demo catalog of product `chat`: features ai_credit,
    messages (metered), team_seats (config), sso, api_access,
    priority_support; tiers free (default), starter, pro, enterprise."""
    call_command("load_catalog", str(DEMO_CATALOG), stdout=io.StringIO())
    product.refresh_from_db()
    return product


@pytest.fixture
def features(catalog) -> dict[str, Feature]:
    return {feature.code: feature for feature in Feature.objects.filter(product=catalog)}


@pytest.fixture
def tiers(catalog) -> dict[str, Tier]:
    return {tier.code: tier for tier in Tier.objects.filter(product=catalog)}


@pytest.fixture
def company(product):
    company = CompanyFactory(name="Acme Inc", short_id="acme-inc")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    return company


@pytest.fixture
def other_company(other_product):
    """A company linked only to the other product."""
    company = CompanyFactory(name="Globex", short_id="globex")
    ProductLinkFactory(product=other_product, company=company, external_org_id="org_globex")
    return company


@pytest.fixture
def staff_actor():
    from companies.actors import Actor

    return Actor.system("tests")


def product_of(code: str) -> Product:
    return Product.objects.get(code=code)
