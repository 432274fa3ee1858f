"""The credits API (SPEC §7) in the shapes of SPEC §2."""

from __future__ import annotations

import pytest

from credits.models import EntryKind, LedgerEntry, Reservation, Wallet


def post(api, path, body, **headers):
    return api.post(f"/api/v1/credits/{path}", body, format="json", **headers)


@pytest.fixture
def funded(company, grant):
    grant(50, bucket="subscription", reason="cycle")
    grant(50, bucket="topup", reason="topup")
    return company


def debit_body(company, amount=5, job="job-1", **extra):
    return {"companyId": str(company.pk), "amount": amount, "jobId": job, "sourceService": "ai", **extra}


def test_debit_and_replay(api, funded):
    response = post(api, "debit", debit_body(funded))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["amount"] == 5 and body["totalBalanceAfter"] == 95
    assert body["balanceSubscriptionAfter"] == 45 and body["balanceTopupAfter"] == 50
    again = post(api, "debit", debit_body(funded))
    assert again.json() == body and again["Idempotent-Replayed"] == "true"
    conflict = post(api, "debit", debit_body(funded, amount=6))
    assert conflict.status_code == 409 and conflict.json()["error"]["details"]["ledgerEntryId"] == body["ledgerEntryId"]


def test_idempotency_keys_are_scoped_to_the_product(api, funded, product, grant):
    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    other = CompanyFactory()
    ProductLinkFactory(product=product, company=other)
    grant(10, target=other)
    first = post(api, "debit", debit_body(funded))
    clash = post(api, "debit", debit_body(other))
    assert clash.status_code == 409
    assert clash.json()["error"]["details"]["ledgerEntryId"] == first.json()["ledgerEntryId"]
    assert post(api, "debit", debit_body(other, job="job-2")).status_code == 200


def test_debit_by_external_org_and_402(api, funded):
    response = post(api, "debit", {"externalOrgId": "org_acme", "amount": 101, "jobId": "j", "sourceService": "ai"})
    assert response.status_code == 402
    assert response.json()["error"]["details"] == {"required": 101, "available": 100}
    assert not LedgerEntry.objects.filter(kind=EntryKind.USAGE).exists()


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 0},
        {"amount": 1.5},
        {"amount": "3"},
        {"amount": True},
        {"jobId": None},
        {"sourceService": ""},
        {"sourceService": "usage:ai"},
        {"surprise": 1},
        {"metadata": []},
    ],
)
def test_bad_debit_is_400_and_writes_nothing(api, funded, change):
    before = LedgerEntry.objects.count()
    response = post(api, "debit", {**debit_body(funded), **change})
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["details"]["fields"]
    assert LedgerEntry.objects.count() == before


def test_missing_fields_are_400(api, funded):
    response = post(api, "debit", {"companyId": str(funded.pk)})
    fields = response.json()["error"]["details"]["fields"]
    assert {"amount", "jobId", "sourceService"} <= set(fields)


def test_frozen_is_423(api, funded):
    from credits.services import wallet_freeze

    wallet_freeze(wallet=Wallet.objects.get(), reason="Chargeback", actor="user:ann")
    response = post(api, "debit", debit_body(funded))
    assert response.status_code == 423
    assert response.json()["error"]["details"]["reason"] == "wallet_frozen"


def test_no_wallet_is_404(api, company):
    assert post(api, "debit", debit_body(company)).status_code == 404


def test_refund_flow_and_409_with_what_is_left(api, funded):
    post(api, "debit", debit_body(funded, amount=10))
    body = {"companyId": str(funded.pk), "refundForJobId": "job-1", "sourceService": "ai", "reason": "failed"}
    too_much = post(api, "refund", {**body, "amount": 11})
    assert too_much.status_code == 409
    assert too_much.json()["error"]["details"]["refundable"] == 10
    done = post(api, "refund", {**body, "amount": 4})
    assert done.status_code == 200 and done.json()["refunded"] == 4 and done.json()["totalBalanceAfter"] == 94
    assert post(api, "refund", {**body, "amount": 4})["Idempotent-Replayed"] == "true"
    rest = post(api, "refund", {**body, "reason": "rest"})
    assert rest.json()["refunded"] == 6
    assert post(api, "refund", {**body, "reason": "more"}).status_code == 409


def test_grants_201_then_200(api, company):
    body = {"companyId": str(company.pk), "amount": 25, "reason": "Welcome bonus"}
    first = post(api, "grants", body)
    assert first.status_code == 201 and first.json()["created"] is True
    again = post(api, "grants", body)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["ledgerEntryId"] == first.json()["ledgerEntryId"]
    assert post(api, "grants", {**body, "bucket": "gold"}).status_code == 400
    assert post(api, "grants", {**body, "reason": "x", "expiresAt": "2001-01-01T00:00:00Z"}).status_code == 400


def test_balance_and_ledger_pages(api, funded):
    for index in range(4):
        post(api, "debit", debit_body(funded, amount=1, job=f"j{index}"))
    balance = api.get(f"/api/v1/companies/{funded.pk}/credits").json()
    assert balance["total"] == 96 and balance["balanceSubscription"] == 46 and balance["available"] == 96
    assert api.get("/api/v1/orgs/org_acme/credits").json()["total"] == 96
    page = api.get(f"/api/v1/credits/ledger?companyId={funded.pk}&limit=3").json()
    assert [e["kind"] for e in page["data"]] == ["usage"] * 3 and page["hasMore"]
    rest = api.get(f"/api/v1/credits/ledger?companyId={funded.pk}&limit=3&cursor={page['nextCursor']}").json()
    assert [e["kind"] for e in rest["data"]] == ["usage", "grant", "grant"] and not rest["hasMore"]
    assert rest["nextCursor"] is None
    grants = api.get(f"/api/v1/credits/ledger?companyId={funded.pk}&kind=grant").json()["data"]
    assert {e["bucket"] for e in grants} == {"subscription", "topup"}
    assert api.get(f"/api/v1/credits/ledger?companyId={funded.pk}&limit=51").status_code == 400
    assert api.get(f"/api/v1/credits/ledger?companyId={funded.pk}&kind=nope").status_code == 400


def test_company_without_wallet_reads_zero(api, company):
    assert api.get(f"/api/v1/companies/{company.pk}/credits").json()["total"] == 0


def test_reservation_lifecycle(api, funded):
    body = {"companyId": str(funded.pk), "runId": "run-1", "amount": 30, "ttlSeconds": 600}
    created = post(api, "reservations", body)
    assert created.status_code == 201, created.json()
    rid = created.json()["reservationId"]
    assert created.json()["available"] == 70
    assert post(api, "reservations", body).status_code == 200
    assert post(api, "reservations", {**body, "amount": 31}).status_code == 409
    patched = api.patch(f"/api/v1/credits/reservations/{rid}", {"chargeOnExpiry": True}, format="json")
    assert patched.json()["chargeOnExpiry"] is True
    usage = post(api, f"reservations/{rid}/usage", {"usageId": "u1", "amount": 12})
    assert usage.json() == {"reservationId": rid, "usageId": "u1", "charged": 12, "totalBalanceAfter": 88}
    settled = post(api, f"reservations/{rid}/settle", {})
    assert settled.json() == {"reservationId": rid, "status": "settled", "charged": 0, "released": 18,
                              "totalBalanceAfter": 88}
    assert post(api, f"reservations/{rid}/release", {}).status_code == 409
    again = post(api, "reservations", {**body, "amount": 10}).json()["reservationId"]
    released = post(api, f"reservations/{again}/release", {})
    assert released.json() == {"reservationId": again, "status": "released", "released": 10}


@pytest.mark.parametrize("change", [{"ttlSeconds": 0}, {"ttlSeconds": 86_401}, {"amount": -1}, {"runId": ""}])
def test_bad_reservation_is_400(api, funded, change):
    body = {"companyId": str(funded.pk), "runId": "run-1", "amount": 30, "ttlSeconds": 600, **change}
    assert post(api, "reservations", body).status_code == 400
    assert not Reservation.objects.exists()


def test_hold_refused_402_writes_nothing(api, funded):
    body = {"companyId": str(funded.pk), "runId": "run-1", "amount": 300, "ttlSeconds": 60}
    assert post(api, "reservations", body).status_code == 402
    assert not Reservation.objects.exists()
    assert post(api, "reservations", {**body, "minAvailable": 50}).status_code == 201


def test_every_endpoint_is_tenant_isolated(api, other_api, funded):
    rid = post(api, "reservations", {"companyId": str(funded.pk), "runId": "r", "amount": 1, "ttlSeconds": 60}).json()[
        "reservationId"
    ]
    post(api, "debit", debit_body(funded))
    cid = str(funded.pk)
    calls = [
        ("post", "/api/v1/credits/debit", debit_body(funded, job="other")),
        ("post", "/api/v1/credits/debit", {"externalOrgId": "org_acme", "amount": 1, "jobId": "x", "sourceService": "a"}),
        ("post", "/api/v1/credits/refund", {"companyId": cid, "refundForJobId": "job-1", "sourceService": "ai", "reason": "r"}),
        ("post", "/api/v1/credits/grants", {"companyId": cid, "amount": 1, "reason": "steal"}),
        ("get", f"/api/v1/companies/{cid}/credits", None),
        ("get", "/api/v1/orgs/org_acme/credits", None),
        ("get", f"/api/v1/credits/ledger?companyId={cid}", None),
        ("post", "/api/v1/credits/reservations", {"companyId": cid, "runId": "x", "amount": 1, "ttlSeconds": 60}),
        ("patch", f"/api/v1/credits/reservations/{rid}", {"chargeOnExpiry": True}),
        ("post", f"/api/v1/credits/reservations/{rid}/usage", {"usageId": "u", "amount": 1}),
        ("post", f"/api/v1/credits/reservations/{rid}/settle", {}),
        ("post", f"/api/v1/credits/reservations/{rid}/release", {}),
    ]
    before = LedgerEntry.objects.count()
    for method, path, body in calls:
        response = getattr(other_api, method)(path, body, format="json") if body is not None else other_api.get(path)
        assert response.status_code == 404, (path, response.json())
        assert "Acme" not in response.content.decode()
    assert LedgerEntry.objects.count() == before
    assert Reservation.objects.get().status == "active"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("refund", {"refundForJobId": "job-1", "sourceService": "ai", "reason": "x", "amount": 0}),
        ("refund", {"refundForJobId": "job-1", "sourceService": "ai"}),
        ("refund", {"refundForJobId": "job-1", "sourceService": "ai", "reason": "x", "amount": 2.5}),
        ("grants", {"amount": -5, "reason": "x"}),
        ("grants", {"amount": 5}),
        ("grants", {"amount": 5, "reason": "x", "bucket": "gold"}),
        ("grants", {"amount": 5, "reason": "x", "expiresAt": "soon"}),
    ],
)
def test_bad_refund_and_grant_input_is_400_and_writes_nothing(api, funded, path, body):
    post(api, "debit", debit_body(funded))
    before = LedgerEntry.objects.count()
    response = post(api, path, {"companyId": str(funded.pk), **body})
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["details"]["fields"]
    assert LedgerEntry.objects.count() == before


@pytest.mark.parametrize("body", [{"usageId": "u", "amount": 0}, {"amount": 3}, {"usageId": "u", "amount": "3"},
                                  {"usageId": "u", "amount": 3, "extra": 1}])
def test_bad_reservation_usage_is_400(api, funded, body):
    rid = post(api, "reservations", {"companyId": str(funded.pk), "runId": "r", "amount": 5, "ttlSeconds": 60}).json()[
        "reservationId"]
    before = LedgerEntry.objects.count()
    assert post(api, f"reservations/{rid}/usage", body).status_code == 400
    assert post(api, f"reservations/{rid}/settle", {"amount": -1}).status_code == 400
    assert LedgerEntry.objects.count() == before


def test_unknown_reservation_is_404(api, funded):
    assert post(api, "reservations/not-a-uuid/settle", {}).status_code == 404
    assert post(api, "reservations/7b2c1a1e-1111-4111-8111-111111111111/release", {}).status_code == 404


def test_idempotency_key_header_is_the_body_field(api, funded):
    first = post(api, "debit", debit_body(funded, job="a"), HTTP_IDEMPOTENCY_KEY="same-key")
    second = post(api, "debit", debit_body(funded, job="a"), HTTP_IDEMPOTENCY_KEY="same-key")
    assert second["Idempotent-Replayed"] == "true"
    assert second.json()["ledgerEntryId"] == first.json()["ledgerEntryId"]
