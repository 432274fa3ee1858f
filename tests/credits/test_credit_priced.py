"""Credit-priced features (SPEC §4/§5): creditCost in the catalog and in the check."""

from __future__ import annotations

import pytest

from entitlements.catalog import CatalogError, catalog_dump, catalog_load, catalog_validate
from entitlements.models import Feature
from tests.factories.entitlements import FeatureAccessFactory, MeteredFeatureFactory

CATALOG = {
    "product": {"code": "chat", "name": "Chat App"},
    "features": [
        {"code": "ai_image", "name": "AI images", "kind": "metered", "unit": "image", "resetPeriod": "monthly",
         "creditCost": 5},
    ],
    "tiers": [{"code": "pro", "name": "Pro", "features": {"ai_image": {"includedQuantity": 2}}}],
}


def test_catalog_loads_and_dumps_credit_cost(db):
    catalog_load(data=CATALOG)
    feature = Feature.objects.get(code="ai_image")
    assert feature.credit_cost == 5
    assert catalog_dump(product=feature.product)["features"][0]["creditCost"] == 5
    assert not catalog_load(data=CATALOG).changed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stripeMeterEventName": "img"}, "features[0].creditCost: a feature cannot have both"),
        ({"creditCost": 0}, "features[0].creditCost: must be a whole number ≥ 1"),
        ({"creditCost": "5"}, "features[0].creditCost"),
        ({"kind": "boolean", "unit": "", "resetPeriod": ""}, "features[0].creditCost: only metered features"),
    ],
)
def test_catalog_refuses_bad_credit_cost(change, message):
    data = {**CATALOG, "features": [{**CATALOG["features"][0], **change}], "tiers": []}
    with pytest.raises(CatalogError) as error:
        catalog_validate(data)
    assert message in str(error.value)


@pytest.fixture
def image_feature(product, company):
    feature = MeteredFeatureFactory(product=product, code="ai_image", credit_cost=5, stripe_meter_event_name="")
    FeatureAccessFactory(company=company, feature=feature, quantity_limit=None, included_quantity=0)
    return feature


def test_check_reports_no_credits_then_active(api, company, image_feature, grant):
    check = api.get(f"/api/v1/companies/{company.pk}/features/ai_image").json()
    assert (check["canUse"], check["status"], check["creditCost"], check["creditsAvailable"]) == (
        False, "no_credits", 5, 0)
    grant(4)
    assert api.get(f"/api/v1/companies/{company.pk}/features/ai_image").json()["status"] == "no_credits"
    grant(1)
    check = api.get(f"/api/v1/companies/{company.pk}/features/ai_image").json()
    assert (check["canUse"], check["status"], check["creditsAvailable"]) == (True, "active", 5)


def test_included_units_are_free_in_the_check(api, company, product):
    feature = MeteredFeatureFactory(product=product, code="ai_image", credit_cost=5, stripe_meter_event_name="")
    FeatureAccessFactory(company=company, feature=feature, quantity_limit=None, included_quantity=3)
    check = api.get(f"/api/v1/companies/{company.pk}/features/ai_image").json()
    assert check["canUse"] and check["status"] == "active"


def test_features_without_credit_cost_report_nulls(api, company, product):
    feature = MeteredFeatureFactory(product=product, code="msgs")
    FeatureAccessFactory(company=company, feature=feature)
    check = api.get(f"/api/v1/companies/{company.pk}/features/msgs").json()
    assert check["creditCost"] is None and check["creditsAvailable"] is None
