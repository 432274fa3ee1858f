"""The entitlements API (SPEC §4): shapes, errors, tenant isolation."""

import uuid

import pytest

from entitlements.models import FeatureAccess
from tests.factories.entitlements import FeatureAccessFactory, FeatureFactory, TierFactory

pytestmark = pytest.mark.django_db

CHECK_KEYS = {
    "featureCode",
    "featureName",
    "kind",
    "isEnabled",
    "canUse",
    "hasQuantity",
    "currentUsage",
    "quantityLimit",
    "includedQuantity",
    "remaining",
    "configValues",
    "source",
    "validUntil",
    "tierCode",
    "status",
    "creditCost",
    "creditsAvailable",
    "usagePercent",
    "resetPeriod",
    "periodStart",
    "resetAt",
    "reason",
}


def error_of(response):
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


# --- checks -------------------------------------------------------------------------------------


def test_check_one_feature(api, company, features, tiers):
    api.post("/api/v1/tiers/pro/apply", {"companyId": str(company.pk)}, format="json")
    response = api.get(f"/api/v1/companies/{company.pk}/features/ai_credit")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == CHECK_KEYS
    assert body["featureCode"] == "ai_credit" and body["tierCode"] == "pro" and body["source"] == "subscription"
    assert body["isEnabled"] and body["canUse"] and body["hasQuantity"]
    assert body["quantityLimit"] is None and body["remaining"] is None and body["includedQuantity"] == 1000
    assert "X-Request-Id" in response


def test_check_missing_row_is_disabled(api, company, catalog):
    body = api.get(f"/api/v1/companies/{company.pk}/features/sso").json()
    assert body["isEnabled"] is False and body["canUse"] is False and body["source"] is None


def test_valid_until_is_iso_utc(api, company, features):
    FeatureAccessFactory(company=company, feature=features["sso"], valid_until="2031-01-02T03:04:05+02:00")
    body = api.get(f"/api/v1/companies/{company.pk}/features/sso").json()
    assert body["validUntil"] == "2031-01-02T01:04:05Z"


def test_list_features(api, company, features):
    FeatureAccessFactory(company=company, feature=features["sso"])
    body = api.get(f"/api/v1/companies/{company.pk}/features").json()
    assert (body["hasMore"], body["nextCursor"]) == (False, None)
    assert [item["featureCode"] for item in body["data"]] == sorted(features)
    assert all(set(item) == CHECK_KEYS for item in body["data"])


def test_org_endpoints(api, company, features):
    FeatureAccessFactory(company=company, feature=features["sso"])
    body = api.get("/api/v1/orgs/org_acme/features").json()
    assert body["companyId"] == str(company.pk)
    assert {f["featureCode"]: f["isEnabled"] for f in body["features"]}["sso"] is True
    assert api.get("/api/v1/orgs/org_acme/features/sso").json()["canUse"] is True
    response = api.patch("/api/v1/orgs/org_acme/features/team_seats", {"config": {"maxSeats": 50}}, format="json")
    assert response.status_code == 200
    assert response.json()["configValues"] == {"maxSeats": 50}


def test_unknown_company_feature_or_org_is_404(api, company, catalog):
    for url in (
        f"/api/v1/companies/{uuid.uuid4()}/features/sso",
        f"/api/v1/companies/{uuid.uuid4()}/features",
        f"/api/v1/companies/{company.pk}/features/nope",
        "/api/v1/companies/not-a-uuid/features/sso",
        "/api/v1/orgs/org_nobody/features",
        "/api/v1/orgs/org_nobody/features/sso",
        "/api/v1/orgs/org_acme/features/nope",
    ):
        response = api.get(url)
        assert response.status_code == 404, url
        assert error_of(response)["code"] == "NOT_FOUND"


def test_missing_or_bad_key_is_401(client, company, catalog):
    response = client.get(f"/api/v1/companies/{company.pk}/features/sso")
    assert response.status_code == 401 and error_of(response)["code"] == "UNAUTHORIZED"


# --- PATCH --------------------------------------------------------------------------------------


def test_patch_sets_access_and_records_reason(api, company, features):
    url = f"/api/v1/companies/{company.pk}/features/ai_credit"
    response = api.patch(
        url, {"quantityLimit": 500, "includedQuantity": 100, "reason": "Deal #12", "validUntil": None}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["quantityLimit"], body["includedQuantity"], body["source"], body["isEnabled"]) == (500, 100, "api", True)
    record = FeatureAccess.objects.get(company=company, feature=features["ai_credit"]).history.get()
    assert record.history_change_reason == "Deal #12"
    assert record.actor.startswith("api_key:tests (")


def test_patch_merges_config(api, company, features):
    url = f"/api/v1/companies/{company.pk}/features/team_seats"
    api.patch(url, {"config": {"maxSeats": 10, "model": "gpt"}}, format="json")
    body = api.patch(url, {"config": {"model": None, "extra": {"a": 1}}}, format="json").json()
    assert body["configValues"] == {"maxSeats": 10, "extra": {"a": 1}}


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"quantityLimit": -1}, "quantityLimit"),
        ({"includedQuantity": -1}, "includedQuantity"),
        ({"quantityLimit": 2.5}, "quantityLimit"),
        ({"quantityLimit": "10"}, "quantityLimit"),
        ({"source": "gift"}, "source"),
        ({"config": "maxSeats=3"}, "config"),
        ({"config": [1, 2]}, "config"),
        ({"isEnabled": "yes"}, "isEnabled"),
        ({"validUntil": "soon"}, "validUntil"),
        ({"quantiy": 3}, "quantiy"),
        ({"includedQuantity": 2**70}, "includedQuantity"),
    ],
)
def test_patch_bad_input_is_400_with_field_and_nothing_changes(api, company, features, payload, field):
    response = api.patch(f"/api/v1/companies/{company.pk}/features/ai_credit", payload, format="json")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "BAD_REQUEST" and field in error["details"]["fields"]
    assert not FeatureAccess.objects.exists()


def test_patch_malformed_json_is_400(api, company, features):
    response = api.generic(
        "PATCH", f"/api/v1/companies/{company.pk}/features/sso", "{not json", content_type="application/json"
    )
    assert response.status_code == 400 and error_of(response)["code"] == "BAD_REQUEST"


def test_patch_unknown_feature_is_404(api, company, catalog):
    response = api.patch(f"/api/v1/companies/{company.pk}/features/nope", {"isEnabled": True}, format="json")
    assert response.status_code == 404


# --- tiers ----------------------------------------------------------------------------------


def tiers_default_code(tiers) -> str | None:
    return next((code for code, tier in tiers.items() if tier.is_default), None)


def test_tier_list_shows_active_tiers_in_order(api, tiers):
    tiers["starter"].is_active = False
    tiers["starter"].save()
    body = api.get("/api/v1/tiers").json()["data"]
    assert [t["code"] for t in body] == ["free", "pro", "enterprise"]
    assert set(body[0]) == {
        "code", "name", "description", "isActive", "isDefault", "displayOrder", "createdAt", "updatedAt"
    }
    assert all(t["isActive"] for t in body) and body[0]["createdAt"].endswith("Z")
    assert [t["isDefault"] for t in body] == [t["code"] == tiers_default_code(tiers) for t in body]


def test_tier_detail(api, tiers):
    body = api.get("/api/v1/tiers/pro").json()
    assert body["baseFee"] == {
        "stripePriceId": "price_chat_pro_base",
        "unitAmount": 4900,
        "currency": "eur",
        "interval": "month",
    }
    assert body["stripePriceIds"] == ["price_chat_pro_base", "price_chat_ai_credit", "price_chat_messages"]
    by_code = {f["code"]: f for f in body["features"]}
    assert by_code["team_seats"]["configValues"] == {"maxSeats": 50}
    assert by_code["ai_credit"]["quantityLimit"] is None and by_code["ai_credit"]["includedQuantity"] == 1000
    assert api.get("/api/v1/tiers/free").json()["baseFee"] is None
    assert api.get("/api/v1/tiers/nope").status_code == 404


def test_apply_and_subscriptions_alias(api, company, features, tiers):
    response = api.post(
        "/api/v1/tiers/pro/apply",
        {"companyId": str(company.pk), "features": {"ai_credit": {"quantityLimit": 3000}}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["tierCode"] == "pro" and "ai_credit" in body["featuresApplied"] and body["featuresRemoved"] == []
    assert FeatureAccess.objects.get(company=company, feature=features["ai_credit"]).quantity_limit == 3000
    response = api.post("/api/v1/subscriptions", {"tierCode": "starter", "companyId": str(company.pk)}, format="json")
    assert response.status_code == 200
    assert response.json()["featuresRemoved"] == ["sso"]


def test_apply_errors(api, company, tiers):
    url = "/api/v1/tiers/pro/apply"
    assert api.post("/api/v1/tiers/nope/apply", {"companyId": str(company.pk)}, format="json").status_code == 404
    assert api.post(url, {"companyId": str(uuid.uuid4())}, format="json").status_code == 404
    assert api.post(url, {"companyId": "x"}, format="json").status_code == 400
    assert api.post(url, {}, format="json").status_code == 400
    response = api.post(url, {"companyId": str(company.pk), "features": {"nope": {}}}, format="json")
    assert response.status_code == 404
    response = api.post(
        url, {"companyId": str(company.pk), "features": {"ai_credit": {"quantityLimit": -1}}}, format="json"
    )
    assert response.status_code == 400
    assert "features.ai_credit.quantityLimit" in error_of(response)["details"]["fields"]
    response = api.post(url, {"companyId": str(company.pk), "features": {"ai_credit": {"maxQuantity": 1}}}, format="json")
    assert response.status_code == 400
    response = api.post(url, {"companyId": str(company.pk), "features": {"ai_credit": {"config": "x"}}}, format="json")
    assert response.status_code == 400
    assert api.post("/api/v1/subscriptions", {"companyId": str(company.pk)}, format="json").status_code == 400
    tiers["starter"].is_active = False
    tiers["starter"].save()
    response = api.post("/api/v1/tiers/starter/apply", {"companyId": str(company.pk)}, format="json")
    assert response.status_code == 412 and error_of(response)["code"] == "PRECONDITION_FAILED"
    assert not FeatureAccess.objects.exists()


# --- tenant isolation -------------------------------------------------------------------------------


def test_tenant_isolation_both_directions(api, other_api, company, other_company, features, other_product):
    FeatureAccessFactory(company=company, feature=features["sso"])
    crm_feature = FeatureFactory(product=other_product, code="sso")
    FeatureAccessFactory(company=other_company, feature=crm_feature)
    TierFactory(product=other_product, code="crm_pro")

    # chat's key cannot see the CRM company, its features or tiers ...
    for url in (
        f"/api/v1/companies/{other_company.pk}/features",
        f"/api/v1/companies/{other_company.pk}/features/sso",
        "/api/v1/orgs/org_globex/features",
        "/api/v1/orgs/org_globex/features/sso",
        "/api/v1/tiers/crm_pro",
    ):
        assert api.get(url).status_code == 404, url
    assert api.patch(f"/api/v1/companies/{other_company.pk}/features/sso", {"isEnabled": False}, format="json").status_code == 404
    assert api.patch("/api/v1/orgs/org_globex/features/sso", {"isEnabled": False}, format="json").status_code == 404
    assert api.post("/api/v1/tiers/pro/apply", {"companyId": str(other_company.pk)}, format="json").status_code == 404
    assert "crm_pro" not in [t["code"] for t in api.get("/api/v1/tiers").json()["data"]]

    # ... and the CRM key cannot see chat's.
    for url in (
        f"/api/v1/companies/{company.pk}/features",
        f"/api/v1/companies/{company.pk}/features/sso",
        "/api/v1/orgs/org_acme/features/sso",
        "/api/v1/tiers/pro",
    ):
        assert other_api.get(url).status_code == 404, url
    assert other_api.post("/api/v1/tiers/crm_pro/apply", {"companyId": str(company.pk)}, format="json").status_code == 404
    assert [t["code"] for t in other_api.get("/api/v1/tiers").json()["data"]] == ["crm_pro"]
    # Same feature code in both products: each key sees its own row.
    assert other_api.get(f"/api/v1/companies/{other_company.pk}/features/sso").json()["isEnabled"] is True
    assert FeatureAccess.objects.get(company=other_company).is_enabled


def test_company_linked_to_both_products_sees_each_products_features(api, other_api, company, other_product, features):
    from tests.factories.companies import ProductLinkFactory

    ProductLinkFactory(product=other_product, company=company, external_org_id="crm_acme")
    FeatureFactory(product=other_product, code="pipeline")
    chat_codes = {f["featureCode"] for f in api.get(f"/api/v1/companies/{company.pk}/features").json()["data"]}
    crm_codes = {f["featureCode"] for f in other_api.get(f"/api/v1/companies/{company.pk}/features").json()["data"]}
    assert chat_codes == set(features) and crm_codes == {"pipeline"}
    assert other_api.get(f"/api/v1/companies/{company.pk}/features/sso").status_code == 404


def test_schema_documents_the_endpoints(client):
    schema = client.get("/api/v1/schema/?format=json").json()
    for path in (
        "/api/v1/companies/{companyId}/features",
        "/api/v1/companies/{companyId}/features/{featureCode}",
        "/api/v1/orgs/{externalOrgId}/features/{featureCode}",
        "/api/v1/tiers/{code}/apply",
        "/api/v1/subscriptions",
    ):
        assert path in schema["paths"], path
