"""Signed service requests (SPEC §7): HMAC, clock skew, nonces, the service's own sourceService."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from companies.models import ServiceCredential, ServiceNonce
from companies.service_credentials import nonce_first_use, service_nonces_prune, sign
from companies.services import service_credential_create, service_credential_revoke
from credits.models import LedgerEntry


@pytest.fixture
def credential(product):
    return service_credential_create(product=product, service_name="ai-worker")


def signed(method, path, body=None, *, secret, service="ai-worker", timestamp=None, nonce=None, sign_body=None):
    raw = json.dumps(body).encode() if body is not None else b""
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or uuid.uuid4().hex
    signature = sign(
        secret=secret, timestamp=timestamp, nonce=nonce, method=method, path=path,
        body=raw if sign_body is None else sign_body,
    )
    client = APIClient()
    headers = {"HTTP_X_SERVICE_NAME": service, "HTTP_X_TIMESTAMP": timestamp, "HTTP_X_NONCE": nonce,
               "HTTP_X_SIGNATURE": signature}
    if method == "GET":
        return client.get(path, **headers)
    return client.generic(method, path, raw, content_type="application/json", **headers)


def debit_body(company, service="ai-worker", job="job-1"):
    return {"companyId": str(company.pk), "amount": 2, "jobId": job, "sourceService": service}


def test_signed_debit_and_get_with_query(credential, company, wallet):
    _, secret = credential
    response = signed("POST", "/api/v1/credits/debit", debit_body(company), secret=secret)
    assert response.status_code == 200, response.json()
    assert LedgerEntry.objects.get(kind="usage").actor.startswith("service:ai-worker")
    ledger = signed("GET", f"/api/v1/credits/ledger?companyId={company.pk}&limit=5", secret=secret)
    assert ledger.status_code == 200 and len(ledger.json()["data"]) == 2


def test_replayed_nonce_is_401(credential, company, wallet):
    _, secret = credential
    assert signed("POST", "/api/v1/credits/debit", debit_body(company), secret=secret, nonce="nonce-0001").status_code == 200
    again = signed("POST", "/api/v1/credits/debit", debit_body(company, job="j2"), secret=secret, nonce="nonce-0001")
    assert again.status_code == 401 and "nonce" in again.json()["error"]["message"]


@pytest.mark.parametrize("skew", [-301, 301])
def test_clock_skew_is_401(credential, company, wallet, skew):
    _, secret = credential
    response = signed("POST", "/api/v1/credits/debit", debit_body(company), secret=secret, timestamp=int(time.time()) + skew)
    assert response.status_code == 401


def test_wrong_body_hash_is_401_and_writes_nothing(credential, company, wallet):
    _, secret = credential
    response = signed("POST", "/api/v1/credits/debit", debit_body(company), secret=secret, sign_body=b'{"amount": 1}')
    assert response.status_code == 401
    assert not LedgerEntry.objects.filter(kind="usage").exists()


def test_wrong_service_in_source_service_is_403(credential, company, wallet):
    _, secret = credential
    response = signed("POST", "/api/v1/credits/debit", debit_body(company, service="billing"), secret=secret)
    assert response.status_code == 403
    assert not LedgerEntry.objects.filter(kind="usage").exists()


def test_unknown_service_wrong_secret_revoked_and_partial_headers_are_401(
    credential, company, wallet, django_capture_on_commit_callbacks
):
    credential_row, secret = credential
    path = "/api/v1/credits/debit"
    assert signed("POST", path, debit_body(company), secret=secret, service="other").status_code == 401
    assert signed("POST", path, debit_body(company), secret="os_ss_wrong").status_code == 401
    partial = APIClient().post(path, debit_body(company), format="json", HTTP_X_SERVICE_NAME="ai-worker")
    assert partial.status_code == 401
    with django_capture_on_commit_callbacks(execute=True):
        service_credential_revoke(credential=credential_row)
    assert signed("POST", path, debit_body(company), secret=secret).status_code == 401


def test_signed_service_sees_only_its_product(credential, other_product, company, wallet):
    _, secret = service_credential_create(product=other_product, service_name="ai-worker")
    response = signed("GET", f"/api/v1/companies/{company.pk}/credits", secret=secret)
    assert response.status_code == 404


@override_settings(CACHES={"default": {"BACKEND": "config.cache.PooledRedisCache",
                                       "LOCATION": "redis://127.0.0.1:1/0"}})
def test_nonces_fall_back_to_the_database_when_the_cache_is_down(credential):
    credential_row, _ = credential
    assert nonce_first_use(credential_id=credential_row.pk, nonce="abc-12345") is True
    assert nonce_first_use(credential_id=credential_row.pk, nonce="abc-12345") is False
    assert ServiceNonce.objects.count() == 1
    assert service_nonces_prune() == 0


def test_command_prints_only_the_secret(product, capsys):
    call_command("create_service_credential", "--product", product.code, "--service", "worker")
    out = capsys.readouterr().out.strip()
    assert out.startswith("os_ss_") and "\n" not in out
    assert ServiceCredential.objects.get(service_name="worker").secret == out


def test_the_signed_path_includes_the_query_string(credential, company, wallet):
    _, secret = credential
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
    path = f"/api/v1/credits/ledger?companyId={company.pk}"
    signature = sign(secret=secret, timestamp=timestamp, nonce=nonce, method="GET", path="/api/v1/credits/ledger")
    response = APIClient().get(path, HTTP_X_SERVICE_NAME="ai-worker", HTTP_X_TIMESTAMP=timestamp,
                               HTTP_X_NONCE=nonce, HTTP_X_SIGNATURE=signature)
    assert response.status_code == 401
