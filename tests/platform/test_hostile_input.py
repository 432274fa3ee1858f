"""Hostile input never reaches a 500 (issue 8 items 3–5): deeply nested JSON,
wrong JSON types, lone surrogates, a bad Host, the 415/401/healthz envelope."""

from __future__ import annotations

import logging
import uuid
from unittest import mock

import pytest
from django.db import OperationalError
from django.db.backends.utils import CursorWrapper
from rest_framework.test import APIClient

from companies.models import Company, Contact
from tests.factories.companies import CompanyFactory, ProductLinkFactory
from tests.factories.entitlements import FeatureFactory, MeteredFeatureFactory, TierFactory
from tests.platform.test_envelope import ENVELOPE_KEYS, _error

pytestmark = pytest.mark.django_db

WRITE_ENDPOINTS = [
    ("POST", "companies"),
    ("POST", "companies/smart-link"),
    ("PATCH", "companies/{company}"),
    ("POST", "contacts"),
    ("POST", "contacts/bulk-upsert"),
    ("POST", "links"),
    ("POST", "links/reset"),
    ("PATCH", "companies/{company}/features/sso"),
    ("PATCH", "orgs/org_acme/features/sso"),
    ("POST", "tiers/pro/apply"),
    ("POST", "subscriptions"),
    ("POST", "usage/track"),
    ("POST", "usage/track-batch"),
    ("POST", "usage/set"),
    ("POST", "usage/adjust"),
    ("POST", "billing/claim-checkout"),
    ("POST", "billing/link-subscription"),
    ("POST", "onboard"),
]


@pytest.fixture
def company(product):
    # The catalog the endpoints look up before they read the body.
    FeatureFactory(product=product, code="sso")
    MeteredFeatureFactory(product=product, code="ai_credit")
    TierFactory(product=product, code="pro")
    company = CompanyFactory(name="Acme", short_id="acme", domain="acme.com")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    return company


def _nested(depth: int) -> str:
    return '{"metadata": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize(("method", "path"), WRITE_ENDPOINTS)
@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_json_is_400_on_every_write_endpoint(api, company, method, path, depth, caplog):
    url = "/api/v1/" + path.format(company=company.pk)
    with caplog.at_level(logging.DEBUG):
        response = api.generic(method, url, _nested(depth), content_type="application/json")
    error = _error(response, 400, "BAD_REQUEST")
    assert "nest" in error["message"].lower()
    assert not any(record.exc_info for record in caplog.records), "a traceback was logged"


def test_reasonably_nested_metadata_is_still_accepted(api, company):
    nested: dict = {"leaf": 1}
    for _ in range(20):
        nested = {"n": nested}
    response = api.patch(f"/api/v1/companies/{company.pk}", {"metadata": {"deep": nested}}, format="json")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("usage/set", {"featureCode": "ai_credit", "absoluteValue": 1, "reason": 123}, "reason"),
        ("usage/set", {"featureCode": "ai_credit", "absoluteValue": 1, "reason": "r", "performedBy": 5}, "performedBy"),
        ("usage/track", {"featureCode": "ai_credit", "idempotencyKey": 42}, "idempotencyKey"),
        ("usage/track", {"featureCode": 7}, "featureCode"),
        ("usage/adjust", {"featureCode": "ai_credit", "delta": 1, "reason": ["r"]}, "reason"),
        ("onboard", {"externalOrgId": 12345}, "externalOrgId"),
        ("onboard", {"externalOrgId": "org_x", "contactName": 1}, "contactName"),
        ("onboard", {"externalOrgId": "org_x", "tierCode": True}, "tierCode"),
        ("billing/link-subscription", {"stripeSubscriptionId": 1}, "stripeSubscriptionId"),
        ("tiers/pro/apply", {"reason": 1}, "reason"),
    ],
)
def test_a_number_where_a_string_is_expected_is_400(api, company, path, payload, field):
    if path != "onboard":
        payload = {"companyId": str(company.pk), **payload}
    error = _error(api.post(f"/api/v1/{path}", payload, format="json"), 400, "BAD_REQUEST")
    assert field in error["details"]["fields"], error


@pytest.mark.parametrize(
    "path",
    ["usage/track", "contacts", "links", "billing/claim-checkout", "billing/link-subscription", "tiers/pro/apply"],
)
def test_an_integer_company_id_is_400_not_404(api, company, path):
    payload = {"companyId": company.pk.int, "featureCode": "ai_credit", "email": "a@acme.com",
               "externalOrgId": "org_2", "checkoutSessionId": "cs_1", "stripeSubscriptionId": "sub_1"}
    serializer_fields = {
        "usage/track": {"companyId", "featureCode"},
        "contacts": {"companyId", "email"},
        "links": {"companyId", "externalOrgId"},
        "billing/claim-checkout": {"companyId", "checkoutSessionId"},
        "billing/link-subscription": {"companyId", "stripeSubscriptionId"},
        "tiers/pro/apply": {"companyId"},
    }[path]
    body = {key: value for key, value in payload.items() if key in serializer_fields}
    error = _error(api.post(f"/api/v1/{path}", body, format="json"), 400, "BAD_REQUEST")
    assert "companyId" in error["details"]["fields"]


def test_a_list_of_numbers_where_emails_are_expected_is_400(api):
    payload = {"externalOrgId": "org_x", "hints": {"emails": [1, 2]}}
    error = _error(api.post("/api/v1/companies/smart-link", payload, format="json"), 400, "BAD_REQUEST")
    assert any(field.startswith("hints.emails") for field in error["details"]["fields"])


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("companies", '{"name": "Ac\\ud800me", "externalOrgId": "o"}', "name"),
        ("companies", '{"name": "Acme", "externalOrgId": "o\\udfff"}', "externalOrgId"),
        ("companies", '{"name": "Acme", "externalOrgId": "o", "metadata": {"k": "\\ud800"}}', "metadata"),
        ("companies", '{"name": "Acme", "externalOrgId": "o", "metadata": {"\\ud800": 1}}', "metadata"),
        ("usage/track", '{"externalOrgId": "org_acme", "featureCode": "x\\ud800"}', "featureCode"),
    ],
)
def test_lone_surrogates_are_400_with_the_field(api, company, path, body, field):
    response = api.generic("POST", f"/api/v1/{path}", body, content_type="application/json")
    error = _error(response, 400, "BAD_REQUEST")
    assert field in error["details"]["fields"], error
    assert Company.objects.count() == 1


def test_415_has_its_own_code(api):
    response = api.generic("POST", "/api/v1/companies", "name=Acme", content_type="application/x-www-form-urlencoded")
    _error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    response = api.generic("POST", "/api/v1/companies", "<xml/>", content_type="text/xml")
    _error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_406_has_its_own_code(api, company):
    response = api.get(f"/api/v1/companies/{company.pk}", HTTP_ACCEPT="text/html")
    _error(response, 406, "NOT_ACCEPTABLE")


@pytest.mark.parametrize("header", [None, "Bearer os_sk_" + "a" * 43, "Basic dXNlcjpwdw=="])
def test_401_carries_www_authenticate(db, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/tiers")
    _error(response, 401, "UNAUTHORIZED")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_healthz_is_json(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_healthz_with_the_database_down_is_a_json_503(client):
    with mock.patch.object(CursorWrapper, "execute", side_effect=OperationalError("connection refused")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE" and set(body["error"]) == ENVELOPE_KEYS
    assert "connection refused" not in response.content.decode()


@pytest.mark.parametrize("path", ["/api/v1/tiers", "/api/v1/companies", "/stripe/webhook", "/healthz"])
def test_a_bad_host_on_api_paths_is_a_json_400(api, path):
    response = api.get(path, HTTP_HOST="evil.example.com")
    _error(response, 400, "BAD_REQUEST")


def test_a_bad_host_on_the_admin_stays_html(client):
    response = client.get("/admin/login/", HTTP_HOST="evil.example.com")
    assert response.status_code == 400
    assert not response["Content-Type"].startswith("application/json")


def test_a_failed_write_with_a_surrogate_in_a_contact_changes_nothing(api, company):
    body = '{"companyId": "%s", "email": "a@acme.com", "name": "x\\ud800"}' % company.pk
    error = _error(api.generic("POST", "/api/v1/contacts", body, content_type="application/json"), 400, "BAD_REQUEST")
    assert "name" in error["details"]["fields"]
    assert not Contact.objects.exists()


def test_unknown_company_uuid_is_still_404(api):
    _error(api.post("/api/v1/links", {"companyId": str(uuid.uuid4()), "externalOrgId": "o2"}, format="json"),
           404, "NOT_FOUND")


def test_a_deeply_nested_cursor_is_400(api, company):
    import base64

    cursor = base64.urlsafe_b64encode(("[" * 5000 + "]" * 5000).encode()).decode().rstrip("=")
    error = _error(api.get("/api/v1/tiers", {"cursor": cursor}), 400, "BAD_REQUEST")
    assert "cursor" in error["details"]["fields"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/stripe/webhook"), ("PUT", "/stripe/webhook"),
                                              ("POST", "/healthz"), ("DELETE", "/healthz")])
def test_405_outside_drf_is_an_envelope_too(client, method, path):
    response = client.generic(method, path)
    _error(response, 405, "METHOD_NOT_ALLOWED")
    assert response["Allow"]
