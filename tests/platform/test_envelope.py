"""The API platform of SPEC §2: the error envelope for every kind of error,
authentication, request ids, throttling, a database outage, the docs."""

import re
import uuid
from unittest import mock

import pytest
from django.db import OperationalError
from django.db.backends.utils import CursorWrapper
from django.test import override_settings
from rest_framework.test import APIClient

from companies.models import ApiKey, Company, Contact
from companies.services import api_key_revoke
from tests.factories.companies import CompanyFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db

ENVELOPE_KEYS = {"code", "message", "httpStatus", "details", "requestId"}


def _error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == ENVELOPE_KEYS
    assert body["error"]["code"] == code and body["error"]["httpStatus"] == status
    assert body["error"]["requestId"] == response["X-Request-Id"]
    assert "Traceback" not in response.content.decode()
    return body["error"]


def _raw_post(client, path, data, content_type="application/json"):
    return client.generic("POST", f"/api/v1/{path}", data, content_type=content_type)


@pytest.fixture
def company(product):
    company = CompanyFactory(name="Acme", short_id="acme", domain="acme.com")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    return company


# --- Bad input is always a 400 with field messages, and changes nothing -------------------------


@pytest.mark.parametrize("body", ['{"name": "Acme", ', "not json", '{"name": "A"} trailing', "\x00"])
def test_malformed_json(api, body):
    error = _error(_raw_post(api, "companies", body), 400, "BAD_REQUEST")
    assert "Malformed" in error["message"]
    assert not Company.objects.exists()


@pytest.mark.parametrize("body", ["[]", '"string"', "42", "null"])
def test_body_that_is_not_an_object(api, body):
    _error(_raw_post(api, "companies", body), 400, "BAD_REQUEST")


def test_form_encoded_body_is_refused(api):
    response = _raw_post(api, "companies", "name=Acme", content_type="application/x-www-form-urlencoded")
    assert response.status_code in (400, 415)
    assert response.json()["error"]["httpStatus"] == response.status_code


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": ["Acme"], "externalOrgId": "o"}, "name"),
        ({"name": {"x": 1}, "externalOrgId": "o"}, "name"),
        ({"name": True, "externalOrgId": "o"}, "name"),
        ({"name": "Acme", "externalOrgId": 7}, "externalOrgId"),
        ({"name": "Acme", "externalOrgId": "o", "metadata": "x"}, "metadata"),
    ],
)
def test_wrong_types(api, payload, field):
    error = _error(api.post("/api/v1/companies", payload, format="json"), 400, "BAD_REQUEST")
    assert field in error["details"]["fields"]
    assert error["message"].startswith(field)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "A" * 201, "externalOrgId": "o"}, "name"),
        ({"name": "Acme", "externalOrgId": "o" * 201}, "externalOrgId"),
        ({"name": "Acme", "externalOrgId": "o", "contactName": "n" * 201}, "contactName"),
        ({"name": "Acme", "externalOrgId": "o", "metadata": {"blob": "x" * 20000}}, "metadata"),
        ({"name": "Acme", "externalOrgId": "o", "domain": "a" * 64 + ".com"}, "domain"),
    ],
)
def test_oversize_strings(api, payload, field):
    error = _error(api.post("/api/v1/companies", payload, format="json"), 400, "BAD_REQUEST")
    assert field in error["details"]["fields"]
    assert not Company.objects.exists()


@pytest.mark.parametrize("value", ["2024-02-30T00:00:00Z", "15/01/2024", "2024-01-15T25:00:00Z", "", 1705312200])
def test_bad_dates(api, value):
    payload = {"name": "Acme", "externalOrgId": "o", "createdAt": value}
    error = _error(api.post("/api/v1/companies", payload, format="json"), 400, "BAD_REQUEST")
    assert "createdAt" in error["details"]["fields"]


def test_nul_byte_in_a_string(api, company):
    for payload in (
        {"name": "Ac\x00me", "externalOrgId": "o"},
        {"name": "Acme", "externalOrgId": "o\x00"},
    ):
        error = _error(api.post("/api/v1/companies", payload, format="json"), 400, "BAD_REQUEST")
        assert error["details"]["fields"]
    error = _error(
        api.post("/api/v1/contacts", {"companyId": str(company.pk), "email": "a@b.com", "name": "x\x00"},
                 format="json"),
        400,
        "BAD_REQUEST",
    )
    assert "name" in error["details"]["fields"]
    assert Company.objects.count() == 1 and not Contact.objects.exists()


def test_nul_byte_in_metadata(api, company):
    for metadata in ({"k": "v\x00"}, {"k\x00": "v"}, {"k": ["\x00"]}):
        error = _error(
            api.patch(f"/api/v1/companies/{company.pk}", {"metadata": metadata}, format="json"), 400, "BAD_REQUEST"
        )
        assert "metadata" in error["details"]["fields"]
    assert company.accounts.get().metadata == {}


def test_unknown_fields(api):
    error = _error(
        api.post("/api/v1/companies", {"name": "Acme", "externalOrgId": "o", "nmae": "typo"}, format="json"),
        400,
        "BAD_REQUEST",
    )
    assert error["details"]["fields"] == {"nmae": ["Unknown field."]}
    assert not Company.objects.exists()


def test_a_failed_request_changes_nothing(api, company):
    before = list(Company.objects.values())
    _error(
        api.post("/api/v1/contacts/bulk-upsert", {"companyId": str(company.pk),
                                                   "contacts": [{"email": "a@acme.com"}, {"email": 1}]},
                 format="json"),
        400,
        "BAD_REQUEST",
    )
    _error(api.post("/api/v1/companies", {"name": "X", "externalOrgId": "org_acme"}, format="json"), 409, "CONFLICT")
    assert list(Company.objects.values()) == before
    assert not Contact.objects.exists()


# --- Routing ---------------------------------------------------------------------------------------


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_oversize_body_is_413_and_changes_nothing(api):
    body = '{"name": "Acme", "externalOrgId": "org_big", "metadata": {"blob": "%s"}}' % ("x" * 2048)
    _error(_raw_post(api, "companies", body), 413, "PAYLOAD_TOO_LARGE")
    assert not Company.objects.exists()


def test_405(api, company):
    response = api.put(f"/api/v1/companies/{company.pk}", {}, format="json")
    _error(response, 405, "METHOD_NOT_ALLOWED")
    _error(api.get("/api/v1/contacts"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/companies/", "/api/v1/", "/api/v2/companies"])
def test_unknown_path_is_a_404_envelope(api, path):
    _error(api.get(path), 404, "NOT_FOUND")


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE"])
def test_unknown_path_is_a_404_envelope_for_writes_too(method, product):
    from companies.services import api_key_create

    _, raw_key = api_key_create(product=product, name="csrf")
    client = APIClient(enforce_csrf_checks=True)
    response = client.generic(
        method, "/api/v1/companies/not-a-uuid/extra", "{}", content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw_key}",
    )
    _error(response, 404, "NOT_FOUND")


def test_invalid_uuid_in_path_is_404(api):
    _error(api.get("/api/v1/companies/12345/contacts"), 404, "NOT_FOUND")


# --- Authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "os_sk_" + "a" * 43, "Bearer not-a-key",
     "Bearer os_sk_" + "a" * 43],
)
def test_missing_malformed_or_unknown_key_is_401(db, header, product):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    _error(client.get("/api/v1/companies/by-product-link", {"externalOrgId": "x"}), 401, "UNAUTHORIZED")
    _error(client.post("/api/v1/companies", {"name": "A", "externalOrgId": "o"}, format="json"), 401, "UNAUTHORIZED")
    assert not Company.objects.exists()


def test_revoked_key_is_401_at_once(api, django_capture_on_commit_callbacks):
    # The first call caches the key lookup; revocation must clear it.
    assert api.get("/api/v1/companies/by-product-link", {"externalOrgId": "x"}).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=ApiKey.objects.get())
    _error(api.get("/api/v1/companies/by-product-link", {"externalOrgId": "x"}), 401, "UNAUTHORIZED")


def test_last_used_is_recorded(api):
    api.get("/api/v1/companies/by-product-link", {"externalOrgId": "x"})
    assert ApiKey.objects.get().last_used_at is not None


# --- Request ids --------------------------------------------------------------------------------------


def test_request_id_is_echoed(api, company):
    response = api.get(f"/api/v1/companies/{company.pk}", HTTP_X_REQUEST_ID="req-123")
    assert response["X-Request-Id"] == "req-123"
    error = _error(api.get("/api/v1/companies/nope", HTTP_X_REQUEST_ID="req-456"), 404, "NOT_FOUND")
    assert error["requestId"] == "req-456"


def test_request_id_is_generated_and_unsafe_ones_replaced(api, company):
    generated = api.get(f"/api/v1/companies/{company.pk}")["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    replaced = api.get(f"/api/v1/companies/{company.pk}", HTTP_X_REQUEST_ID="bad id\r\nx")["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)


# --- Throttling ----------------------------------------------------------------------------------------


# An hour window, not a minute: three requests cannot straddle a window edge in practice.
@override_settings(API_RATE_LIMIT="2/hour")
def test_429_with_retry_after(api, other_api):
    for _ in range(2):
        assert api.get("/api/v1/companies/by-product-link", {"externalOrgId": "x"}).status_code == 404
    response = api.get("/api/v1/companies/by-product-link", {"externalOrgId": "x"})
    error = _error(response, 429, "TOO_MANY_REQUESTS")
    assert int(response["Retry-After"]) >= 1
    assert error["details"]["retryAfter"] == int(response["Retry-After"])
    # The limit is per key: another product's key is not throttled.
    assert other_api.get("/api/v1/companies/by-product-link", {"externalOrgId": "x"}).status_code == 404


# --- Database outage -------------------------------------------------------------------------------------


def test_database_outage_is_503(api, company):
    with mock.patch.object(CursorWrapper, "execute", side_effect=OperationalError("connection refused")):
        response = api.get(f"/api/v1/companies/{company.pk}")
        create = api.post("/api/v1/companies", {"name": "A", "externalOrgId": "o"}, format="json")
    error = _error(response, 503, "SERVICE_UNAVAILABLE")
    assert "connection refused" not in error["message"]
    assert response["Retry-After"]
    _error(create, 503, "SERVICE_UNAVAILABLE")
    assert Company.objects.count() == 1


def test_unexpected_error_is_a_500_envelope_without_details(api, company):
    with mock.patch("companies.selectors.company_get_visible", side_effect=RuntimeError("secret detail")):
        response = api.get(f"/api/v1/companies/{company.pk}")
    error = _error(response, 500, "INTERNAL_SERVER_ERROR")
    assert "secret" not in response.content.decode()
    assert error["details"] == {}


# --- OpenAPI -----------------------------------------------------------------------------------------------


def test_schema_documents_every_companies_endpoint(client):
    response = client.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/api/v1/companies",
        "/api/v1/companies/by-product-link",
        "/api/v1/companies/{companyId}",
        "/api/v1/companies/smart-link",
        "/api/v1/contacts",
        "/api/v1/contacts/bulk-upsert",
        "/api/v1/companies/{companyId}/contacts",
        "/api/v1/links",
        "/api/v1/links/reset",
    ]:
        assert path in paths, path
    create = paths["/api/v1/companies"]["post"]
    assert "201" in create["responses"] and "409" in create["responses"]
    assert "ApiKey" in response.json()["components"]["securitySchemes"]


def test_docs_page_needs_no_internet(client):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger" in html.lower()
    # Every script and stylesheet is served by us, not a CDN.
    assert not re.search(r"""(src|href)=["']https?://""", html)
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()


def test_request_ids_are_unique(api):
    ids = {api.get(f"/api/v1/companies/{uuid.uuid4()}")["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3
