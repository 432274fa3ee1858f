"""Every endpoint of SPEC §3 with every error it can return."""

import uuid

import pytest

from companies.models import Account, Company, Contact, ProductLink
from tests.factories.companies import CompanyFactory, ContactFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db


def _error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert body["code"] == code and body["httpStatus"] == status
    return body


def _post(client, path, body):
    return client.post(f"/api/v1/{path}", body, format="json")


def _patch(client, path, body):
    return client.patch(f"/api/v1/{path}", body, format="json")


# --- POST /companies ---------------------------------------------------------------------


class TestCompanyCreate:
    def test_created(self, api, product):
        response = _post(
            api,
            "companies",
            {
                "name": "Acme Inc",
                "domain": "https://www.acme.com/",
                "externalOrgId": "org_1",
                "externalUserId": "user_1",
                "contactEmail": "Admin@Acme.com",
                "contactName": "John Doe",
                "createdAt": "2024-01-15T10:30:00.000Z",
                "metadata": {"plan": "free"},
            },
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert set(body) == {
            "id", "shortId", "name", "domain", "status", "mrr", "currency", "metadata", "createdAt", "updatedAt",
            "country", "industry", "size", "timezone", "locale", "billingEmail", "billingAddress", "taxId",
            "firstPurchaseAt", "lifetimeValue", "lastActivityAt", "healthScore", "riskLevel",
        }
        assert body["shortId"] == "acme-inc"
        assert body["domain"] == "acme.com"
        assert body["createdAt"] == "2024-01-15T10:30:00Z"
        assert body["updatedAt"].endswith("Z")
        assert (body["status"], body["mrr"], body["metadata"]) == ("prospect", 0, {"plan": "free"})
        company = Company.objects.get(pk=body["id"])
        assert company.links.get().product == product
        assert company.contacts.get().email == "admin@acme.com"

    def test_minimal(self, api):
        response = _post(api, "companies", {"name": "Solo", "externalOrgId": "org_solo"})
        assert response.status_code == 201
        assert response.json()["domain"] is None

    def test_conflict(self, api, linked_company):
        body = _error(_post(api, "companies", {"name": "Again", "externalOrgId": "org_acme"}), 409, "CONFLICT")
        assert body["details"]["companyId"] == str(linked_company.pk)
        assert Company.objects.count() == 1

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"externalOrgId": "org_1"}, "name"),
            ({"name": "Acme"}, "externalOrgId"),
            ({"name": "", "externalOrgId": "org_1"}, "name"),
            ({"name": 12, "externalOrgId": "org_1"}, "name"),
            ({"name": "A" * 201, "externalOrgId": "org_1"}, "name"),
            ({"name": "Acme", "externalOrgId": "org_1", "domain": "no domain"}, "domain"),
            ({"name": "Acme", "externalOrgId": "org_1", "contactEmail": "nope"}, "contactEmail"),
            ({"name": "Acme", "externalOrgId": "org_1", "createdAt": "yesterday"}, "createdAt"),
            ({"name": "Acme", "externalOrgId": "org_1", "createdAt": "2999-01-01T00:00:00Z"}, "createdAt"),
            ({"name": "Acme", "externalOrgId": "org_1", "metadata": [1, 2]}, "metadata"),
            ({"name": "Acme", "externalOrgId": "org_1", "mrr": 5}, "mrr"),
            ({"name": "Acme\x00", "externalOrgId": "org_1"}, "name"),
        ],
    )
    def test_bad_input(self, api, payload, field):
        body = _error(_post(api, "companies", payload), 400, "BAD_REQUEST")
        assert field in body["details"]["fields"]
        assert not Company.objects.exists()


# --- GET /companies/by-product-link -------------------------------------------------------------


class TestByProductLink:
    def test_found(self, api, linked_company):
        ProductLink.objects.filter(external_org_id="org_acme").update(external_user_id="user_9")
        response = api.get("/api/v1/companies/by-product-link", {"externalOrgId": "org_acme"})
        assert response.status_code == 200
        body = response.json()
        assert (body["id"], body["externalOrgId"], body["externalUserId"]) == (
            str(linked_company.pk),
            "org_acme",
            "user_9",
        )

    def test_not_found(self, api):
        _error(api.get("/api/v1/companies/by-product-link", {"externalOrgId": "org_x"}), 404, "NOT_FOUND")

    def test_missing_parameter(self, api):
        body = _error(api.get("/api/v1/companies/by-product-link"), 400, "BAD_REQUEST")
        assert "externalOrgId" in body["details"]["fields"]


# --- GET/PATCH /companies/{id} -------------------------------------------------------------------


class TestCompanyDetail:
    def test_get(self, api, linked_company):
        response = api.get(f"/api/v1/companies/{linked_company.pk}")
        assert response.status_code == 200 and response.json()["shortId"] == "acme-inc"

    def test_patch(self, api, product, linked_company):
        Account.objects.filter(company=linked_company, product=product).update(metadata={"keep": 1, "drop": 2})
        response = _patch(
            api,
            f"companies/{linked_company.pk}",
            {"name": "Acme Corp", "domain": "WWW.ACME.IO", "createdAt": "2023-06-01T00:00:00Z",
             "metadata": {"drop": None, "new": True}},
        )
        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["name"], body["domain"], body["shortId"]) == ("Acme Corp", "acme.io", "acme-inc")
        assert body["createdAt"] == "2023-06-01T00:00:00Z"
        assert body["metadata"] == {"keep": 1, "new": True}

    def test_patch_clears_domain(self, api, linked_company):
        assert _patch(api, f"companies/{linked_company.pk}", {"domain": None}).json()["domain"] is None

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"name": ""}, "name"),
            ({"domain": "http://"}, "domain"),
            ({"createdAt": "2023-13-45"}, "createdAt"),
            ({"createdAt": None}, "createdAt"),
            ({"metadata": "x"}, "metadata"),
            ({"shortId": "mine"}, "shortId"),
        ],
    )
    def test_patch_bad_input_changes_nothing(self, api, linked_company, payload, field):
        body = _error(_patch(api, f"companies/{linked_company.pk}", payload), 400, "BAD_REQUEST")
        assert field in body["details"]["fields"]
        linked_company.refresh_from_db()
        assert (linked_company.name, linked_company.domain) == ("Acme Inc", "acme.com")

    @pytest.mark.parametrize("company_id", ["not-a-uuid", str(uuid.uuid4()), "123"])
    def test_unknown_or_invalid_id_is_404(self, api, company_id):
        _error(api.get(f"/api/v1/companies/{company_id}"), 404, "NOT_FOUND")
        _error(_patch(api, f"companies/{company_id}", {"name": "x"}), 404, "NOT_FOUND")

    def test_delete_is_405(self, api, linked_company):
        response = api.delete(f"/api/v1/companies/{linked_company.pk}")
        _error(response, 405, "METHOD_NOT_ALLOWED")
        assert "PATCH" in response["Allow"]


# --- POST /companies/smart-link --------------------------------------------------------------------


class TestSmartLinkApi:
    def test_linked(self, api, product):
        company = CompanyFactory(customer_pool="chat", name="Acme Inc", domain="acme.com")
        response = _post(
            api,
            "companies/smart-link",
            {"externalOrgId": "org_1", "hints": {"companyName": "Acme", "domain": "acme.com",
                                                 "emails": ["john@acme.com"]}, "minConfidence": 0.7},
        )
        assert response.status_code == 201
        assert response.json() == {
            "status": "linked",
            "companyId": str(company.pk),
            "customerName": "Acme Inc",
            "confidence": 95,
            "matchedBy": "domain",
            "suggestions": [],
        }
        assert ProductLink.objects.filter(product=product, external_org_id="org_1", company=company).exists()

    def test_already_linked(self, api, linked_company):
        body = _post(api, "companies/smart-link", {"externalOrgId": "org_acme", "hints": {}}).json()
        assert (body["status"], body["companyId"]) == ("already_linked", str(linked_company.pk))

    def test_suggestions(self, api):
        a = CompanyFactory(customer_pool="chat", name="Acme Inc", domain="acme.com")
        CompanyFactory(customer_pool="chat", name="Acme GmbH", domain="acme.de")
        body = _post(api, "companies/smart-link", {"externalOrgId": "org_1", "hints": {"companyName": "Acme"}}).json()
        assert body["status"] == "suggestions" and body["companyId"] is None
        assert body["suggestions"][1] == {
            "companyId": str(a.pk), "name": "Acme Inc", "domain": "acme.com", "confidence": 80, "matchedBy": "name"
        }
        assert not ProductLink.objects.exists()

    def test_no_match(self, api):
        body = _post(api, "companies/smart-link", {"externalOrgId": "org_1"}).json()
        assert body == {"status": "no_match", "companyId": None, "customerName": None, "confidence": None,
                        "matchedBy": None, "suggestions": []}

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({}, "externalOrgId"),
            ({"externalOrgId": "o", "minConfidence": 2}, "minConfidence"),
            ({"externalOrgId": "o", "minConfidence": "0.5"}, "minConfidence"),
            ({"externalOrgId": "o", "hints": {"emails": ["bad"]}}, "hints.emails.0"),
            ({"externalOrgId": "o", "hints": {"domain": "x"}}, "hints.domain"),
            ({"externalOrgId": "o", "hints": {"company": "x"}}, "hints.company"),
            ({"externalOrgId": "o", "hints": "acme"}, "hints"),
            ({"externalOrgId": 42}, "externalOrgId"),
        ],
    )
    def test_bad_input(self, api, payload, field):
        body = _error(_post(api, "companies/smart-link", payload), 400, "BAD_REQUEST")
        assert field in body["details"]["fields"], body


# --- POST /contacts ---------------------------------------------------------------------------------


class TestContactUpsert:
    def test_create_then_update(self, api, linked_company):
        payload = {"companyId": str(linked_company.pk), "email": "John@Acme.com", "name": "John", "role": "CEO",
                   "isPrimary": True, "avatarUrl": "https://example.com/a.jpg", "metadata": {"slackId": "U1"}}
        response = _post(api, "contacts", payload)
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["isNew"] is True and body["email"] == "john@acme.com" and body["isPrimary"] is True
        assert body["companyId"] == str(linked_company.pk) and body["avatarUrl"] == "https://example.com/a.jpg"
        response = _post(api, "contacts", {"companyId": str(linked_company.pk), "email": "JOHN@acme.com",
                                           "role": "CTO"})
        assert response.status_code == 200
        assert response.json()["isNew"] is False and response.json()["role"] == "CTO"
        assert response.json()["name"] == "John"

    def test_primary_demotes_previous(self, api, linked_company):
        old = ContactFactory(company=linked_company, is_primary=True)
        _post(api, "contacts", {"companyId": str(linked_company.pk), "email": "n@acme.com", "isPrimary": True})
        old.refresh_from_db()
        assert not old.is_primary

    def test_unknown_company(self, api):
        _error(_post(api, "contacts", {"companyId": str(uuid.uuid4()), "email": "a@b.com"}), 404, "NOT_FOUND")

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"companyId": None, "email": "a@b.com"}, "companyId"),
            ({"companyId": "nope", "email": "a@b.com"}, "companyId"),
            ({"companyId": 5, "email": "a@b.com"}, "companyId"),
            ({"email": 5}, "email"),
            ({"email": "not-an-email"}, "email"),
            ({"email": "a@b.com", "isPrimary": "yes"}, "isPrimary"),
            ({"email": "a@b.com", "avatarUrl": "javascript:alert(1)"}, "avatarUrl"),
            ({"email": "a@b.com", "role": "r" * 101}, "role"),
            ({"email": "a@b.com", "metadata": {"k": "v\x00"}}, "metadata"),
            ({"email": "a@b.com", "phone": "123"}, "phone"),
        ],
    )
    def test_bad_input(self, api, linked_company, payload, field):
        payload = {"companyId": str(linked_company.pk), **payload}
        body = _error(_post(api, "contacts", payload), 400, "BAD_REQUEST")
        assert field in body["details"]["fields"], body
        assert not Contact.objects.exists()


# --- POST /contacts/bulk-upsert ---------------------------------------------------------------------


class TestContactsBulkUpsert:
    def test_upsert(self, api, linked_company):
        ContactFactory(company=linked_company, email="ceo@acme.com")
        response = _post(api, "contacts/bulk-upsert", {
            "companyId": str(linked_company.pk),
            "contacts": [
                {"email": "ceo@acme.com", "name": "Alice", "role": "CEO", "isPrimary": True},
                {"email": "cto@acme.com", "name": "Bob", "role": "CTO"},
            ],
        })
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["created"], body["updated"]) == (1, 1)
        assert [(c["email"], c["isNew"]) for c in body["contacts"]] == [("ceo@acme.com", False), ("cto@acme.com", True)]
        assert Contact.objects.get(pk=body["contacts"][1]["id"]).name == "Bob"
        assert Contact.objects.get(is_primary=True).email == "ceo@acme.com"

    def test_all_or_nothing(self, api, linked_company):
        body = _error(_post(api, "contacts/bulk-upsert", {
            "companyId": str(linked_company.pk),
            "contacts": [{"email": "ok@acme.com"}, {"email": "bad"}],
        }), 400, "BAD_REQUEST")
        assert "contacts.1.email" in body["details"]["fields"]
        assert not Contact.objects.exists()

    def test_duplicates_and_two_primaries(self, api, linked_company):
        body = _error(_post(api, "contacts/bulk-upsert", {
            "companyId": str(linked_company.pk),
            "contacts": [{"email": "a@acme.com", "isPrimary": True}, {"email": "A@acme.com"},
                         {"email": "b@acme.com", "isPrimary": True}],
        }), 400, "BAD_REQUEST")
        assert {"contacts.1.email", "contacts.2.isPrimary"} <= set(body["details"]["fields"])
        assert not Contact.objects.exists()

    def test_more_than_1000(self, api, linked_company):
        contacts = [{"email": f"p{i}@acme.com"} for i in range(1001)]
        body = _error(_post(api, "contacts/bulk-upsert", {"companyId": str(linked_company.pk),
                                                          "contacts": contacts}), 400, "BAD_REQUEST")
        assert "contacts" in body["details"]["fields"]

    def test_1000_is_fine(self, api, linked_company):
        contacts = [{"email": f"p{i}@acme.com"} for i in range(1000)]
        response = _post(api, "contacts/bulk-upsert", {"companyId": str(linked_company.pk), "contacts": contacts})
        assert response.status_code == 201 and response.json()["created"] == 1000

    def test_unknown_company_and_wrong_types(self, api, linked_company):
        _error(_post(api, "contacts/bulk-upsert", {"companyId": str(uuid.uuid4()), "contacts": []}), 404, "NOT_FOUND")
        body = _error(_post(api, "contacts/bulk-upsert", {"companyId": str(linked_company.pk),
                                                          "contacts": {"email": "a@b.c"}}), 400, "BAD_REQUEST")
        assert "contacts" in body["details"]["fields"]


# --- GET /companies/{id}/contacts --------------------------------------------------------------------


class TestContactList:
    def test_primary_first_and_primary_only(self, api, linked_company):
        ContactFactory(company=linked_company, email="a@acme.com")
        ContactFactory(company=linked_company, email="z@acme.com", is_primary=True)
        body = api.get(f"/api/v1/companies/{linked_company.pk}/contacts").json()
        assert [c["email"] for c in body["data"]] == ["z@acme.com", "a@acme.com"]
        body = api.get(f"/api/v1/companies/{linked_company.pk}/contacts", {"primaryOnly": "true"}).json()
        assert [c["email"] for c in body["data"]] == ["z@acme.com"]
        body = api.get(f"/api/v1/companies/{linked_company.pk}/contacts", {"primaryOnly": "false"}).json()
        assert len(body["data"]) == 2

    def test_errors(self, api, linked_company):
        _error(api.get(f"/api/v1/companies/{linked_company.pk}/contacts", {"primaryOnly": "maybe"}), 400,
               "BAD_REQUEST")
        _error(api.get(f"/api/v1/companies/{uuid.uuid4()}/contacts"), 404, "NOT_FOUND")
        _error(api.get("/api/v1/companies/xyz/contacts"), 404, "NOT_FOUND")


# --- POST /links ---------------------------------------------------------------------------------------


class TestLinkCreate:
    def test_created_then_idempotent(self, api, product, linked_company):
        payload = {"companyId": str(linked_company.pk), "externalOrgId": "store_2", "label": "Store 2",
                   "externalUserId": "u2"}
        response = _post(api, "links", payload)
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["companyId"], body["externalOrgId"], body["label"], body["externalUserId"]) == (
            str(linked_company.pk), "store_2", "Store 2", "u2")
        again = _post(api, "links", payload)
        assert again.status_code == 200 and again.json()["id"] == body["id"]
        assert linked_company.links.filter(product=product).count() == 2

    def test_conflict_with_another_company(self, api, product, linked_company):
        other = CompanyFactory()
        ProductLinkFactory(product=product, company=other, external_org_id="org_other")
        body = _error(_post(api, "links", {"companyId": str(other.pk), "externalOrgId": "org_acme"}), 409, "CONFLICT")
        assert body["details"]["externalOrgId"] == "org_acme"

    def test_errors(self, api, linked_company):
        _error(_post(api, "links", {"companyId": str(uuid.uuid4()), "externalOrgId": "x"}), 404, "NOT_FOUND")
        body = _error(_post(api, "links", {"companyId": str(linked_company.pk)}), 400, "BAD_REQUEST")
        assert "externalOrgId" in body["details"]["fields"]
        body = _error(_post(api, "links", {"companyId": str(linked_company.pk), "externalOrgId": "x" * 201}),
                      400, "BAD_REQUEST")
        assert "externalOrgId" in body["details"]["fields"]


# --- POST /links/reset ------------------------------------------------------------------------------------


class TestLinksReset:
    def test_reset(self, api, product, linked_company):
        Account.objects.filter(company=linked_company, product=product).update(mrr=4900)
        ContactFactory(company=linked_company)
        response = _post(api, "links/reset", {"deleteContacts": True, "resetMrr": True})
        assert response.status_code == 200
        assert response.json() == {"linksDeleted": 1, "contactsDeleted": 1, "mrrReset": 1}
        assert not ProductLink.objects.exists()
        assert Account.objects.get(company=linked_company, product=product).mrr == 0

    def test_defaults_keep_contacts(self, api, linked_company):
        ContactFactory(company=linked_company)
        assert _post(api, "links/reset", {}).json() == {"linksDeleted": 1, "contactsDeleted": 0, "mrrReset": 0}
        assert Contact.objects.count() == 1

    def test_bad_input(self, api, linked_company):
        body = _error(_post(api, "links/reset", {"deleteContacts": "yes"}), 400, "BAD_REQUEST")
        assert "deleteContacts" in body["details"]["fields"]
        assert ProductLink.objects.count() == 1
