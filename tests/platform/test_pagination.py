"""The one list shape of SPEC §2 on every list endpoint: `{data, hasMore,
nextCursor}`, `limit` (default 50, max 500) and an opaque keyset `cursor`
that pages through the whole list without repeating or skipping a row."""

from __future__ import annotations

import pytest

from tests.factories.companies import CompanyFactory, ContactFactory, ProductLinkFactory
from tests.factories.entitlements import FeatureFactory, TierFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def company(product):
    company = CompanyFactory(name="Acme Inc", short_id="acme-inc", domain="acme.com")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    return company


def walk(client, url, params=None, *, limit):
    """Follow nextCursor to the end; return the items and the number of pages."""
    params = dict(params or {}, limit=limit)
    items, pages = [], 0
    while True:
        response = client.get(url, params)
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"data", "hasMore", "nextCursor"}
        assert body["hasMore"] is (body["nextCursor"] is not None)
        assert len(body["data"]) <= limit
        items += body["data"]
        pages += 1
        if not body["hasMore"]:
            return items, pages
        params["cursor"] = body["nextCursor"]


def assert_400(response, field):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "BAD_REQUEST"
    assert field in error["details"]["fields"], error


def test_companies_list_pages_by_name_and_searches(api, product, other_product):
    names = [f"Company {n:02d}" for n in range(7)]
    for n, name in enumerate(reversed(names)):
        ProductLinkFactory(product=product, company=CompanyFactory(name=name), external_org_id=f"ext_{n}")
    ProductLinkFactory(product=other_product, company=CompanyFactory(name="Company 99"))  # not visible
    items, pages = walk(api, "/api/v1/companies", limit=3)
    assert [c["name"] for c in items] == names
    assert pages == 3
    # q matches the name, the domain, the shortId and this product's external org ids.
    assert [c["name"] for c in api.get("/api/v1/companies", {"q": "ny 03"}).json()["data"]] == ["Company 03"]
    assert [c["name"] for c in api.get("/api/v1/companies", {"q": "EXT_6"}).json()["data"]] == ["Company 00"]
    assert api.get("/api/v1/companies", {"q": "Company 99"}).json() == {"data": [], "hasMore": False, "nextCursor": None}


def test_contacts_page_primary_first_then_by_email(api, company):
    ContactFactory(company=company, email="z@acme.com", is_primary=True)
    for letter in "edcba":
        ContactFactory(company=company, email=f"{letter}@acme.com")
    items, pages = walk(api, f"/api/v1/companies/{company.pk}/contacts", limit=2)
    assert [c["email"] for c in items] == ["z@acme.com", "a@acme.com", "b@acme.com", "c@acme.com", "d@acme.com", "e@acme.com"]
    assert pages == 3


def test_tiers_and_features_page(api, product, company):
    for order, code in enumerate(["free", "starter", "pro"]):
        TierFactory(product=product, code=code, display_order=order, is_active=True)
    for code in ["a_feature", "b_feature", "c_feature"]:
        FeatureFactory(product=product, code=code)
    tiers, _ = walk(api, "/api/v1/tiers", limit=2)
    assert [t["code"] for t in tiers] == ["free", "starter", "pro"]
    features, pages = walk(api, f"/api/v1/companies/{company.pk}/features", limit=1)
    assert [f["featureCode"] for f in features] == ["a_feature", "b_feature", "c_feature"]
    assert pages == 3


def test_usage_history_pages_newest_first_without_repeats(api, company, product):
    from tests.factories.entitlements import FeatureAccessFactory, MeteredFeatureFactory

    feature = MeteredFeatureFactory(product=product, code="ai_credit")
    FeatureAccessFactory(company=company, feature=feature)
    for n in range(5):
        response = api.post(
            "/api/v1/usage/track", {"companyId": str(company.pk), "featureCode": "ai_credit", "quantity": n + 1}, format="json"
        )
        assert response.status_code == 200
    events, pages = walk(api, "/api/v1/usage/history", {"companyId": str(company.pk)}, limit=2)
    assert [e["quantity"] for e in events] == [5, 4, 3, 2, 1]
    assert len({e["id"] for e in events}) == 5 and pages == 3
    api.post(
        "/api/v1/usage/set",
        {"companyId": str(company.pk), "featureCode": "ai_credit", "absoluteValue": 1, "reason": "x"},
        format="json",
    )
    snapshots, _ = walk(api, "/api/v1/usage/snapshots", {"companyId": str(company.pk)}, limit=1)
    assert [s["snapshotType"] for s in snapshots] == ["set"]


def test_default_limit_is_50(api, company):
    for n in range(51):
        ContactFactory(company=company, email=f"p{n:02d}@acme.com")
    body = api.get(f"/api/v1/companies/{company.pk}/contacts").json()
    assert len(body["data"]) == 50 and body["hasMore"] is True


@pytest.mark.parametrize("limit", ["0", "501", "ten", "-1", "1.5"])
def test_bad_limit_is_a_400(api, company, limit):
    assert_400(api.get("/api/v1/companies", {"limit": limit}), "limit")
    assert_400(api.get(f"/api/v1/companies/{company.pk}/contacts", {"limit": limit}), "limit")
    assert_400(api.get("/api/v1/usage/history", {"companyId": str(company.pk), "limit": limit}), "limit")


def test_bad_or_foreign_cursor_is_a_400(api, company):
    for n in range(3):
        ContactFactory(company=company, email=f"p{n}@acme.com")
        ProductLinkFactory(product=company.links.first().product, company=CompanyFactory())
    contacts_cursor = api.get(f"/api/v1/companies/{company.pk}/contacts", {"limit": 1}).json()["nextCursor"]
    for cursor in ("garbage", "eyJ4IjoxfQ", "W10", contacts_cursor[:-2], "!" * 40):
        assert_400(api.get(f"/api/v1/companies/{company.pk}/contacts", {"cursor": cursor}), "cursor")
    # Another list's cursor is refused rather than misread.
    assert_400(api.get("/api/v1/companies", {"cursor": contacts_cursor}), "cursor")
