"""Tenant isolation (SPEC §2): a key sees only the companies linked to its
product; anything else is 404 — checked on every endpoint, both ways."""

import pytest

from companies.models import Account, Contact, ProductLink
from tests.factories.companies import CompanyFactory, ContactFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["chat_sees_crm", "crm_sees_chat"])
def tenants(request, api, other_api, product, other_product):
    """(client, its own company, the other product's company)."""
    chat_company = CompanyFactory(name="Chat Customer", domain="chatcustomer.com")
    ProductLinkFactory(product=product, company=chat_company, external_org_id="org_chat")
    crm_company = CompanyFactory(name="Crm Customer", domain="crmcustomer.com")
    ProductLinkFactory(product=other_product, company=crm_company, external_org_id="org_crm")
    ContactFactory(company=chat_company, email="a@chatcustomer.com", is_primary=True)
    ContactFactory(company=crm_company, email="a@crmcustomer.com", is_primary=True)
    if request.param == "chat_sees_crm":
        return api, chat_company, crm_company, "org_crm"
    return other_api, crm_company, chat_company, "org_chat"


def _not_found(response):
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_get_and_patch_company(tenants):
    client, own, foreign, _ = tenants
    assert client.get(f"/api/v1/companies/{own.pk}").status_code == 200
    _not_found(client.get(f"/api/v1/companies/{foreign.pk}"))
    _not_found(client.patch(f"/api/v1/companies/{foreign.pk}", {"name": "Hacked"}, format="json"))
    foreign.refresh_from_db()
    assert foreign.name != "Hacked"


def test_by_product_link(tenants):
    client, _, _, foreign_org = tenants
    _not_found(client.get("/api/v1/companies/by-product-link", {"externalOrgId": foreign_org}))


def test_contacts(tenants):
    client, own, foreign, _ = tenants
    _not_found(client.get(f"/api/v1/companies/{foreign.pk}/contacts"))
    _not_found(client.post("/api/v1/contacts", {"companyId": str(foreign.pk), "email": "x@y.com"}, format="json"))
    _not_found(
        client.post(
            "/api/v1/contacts/bulk-upsert",
            {"companyId": str(foreign.pk), "contacts": [{"email": "x@y.com", "isPrimary": True}]},
            format="json",
        )
    )
    assert not Contact.objects.filter(email="x@y.com").exists()
    assert Contact.objects.get(company=foreign).is_primary


def test_links(tenants):
    client, own, foreign, foreign_org = tenants
    _not_found(client.post("/api/v1/links", {"companyId": str(foreign.pk), "externalOrgId": "new"}, format="json"))
    # The other product's external org id is free in this product: no 409.
    response = client.post("/api/v1/links", {"companyId": str(own.pk), "externalOrgId": foreign_org}, format="json")
    assert response.status_code == 201
    assert ProductLink.objects.filter(external_org_id=foreign_org).count() == 2


def test_create_with_the_other_products_external_id(tenants):
    client, _, foreign, foreign_org = tenants
    response = client.post("/api/v1/companies", {"name": "Mine", "externalOrgId": foreign_org}, format="json")
    assert response.status_code == 201
    assert response.json()["id"] != str(foreign.pk)


def test_smart_link_ignores_the_other_products_links(tenants):
    client, _, foreign, foreign_org = tenants
    body = client.post("/api/v1/companies/smart-link", {"externalOrgId": foreign_org}, format="json").json()
    assert body["status"] == "no_match"


def test_links_reset_leaves_the_other_product_alone(tenants):
    client, own, foreign, foreign_org = tenants
    Account.objects.filter(company=foreign).update(mrr=1000)
    body = client.post("/api/v1/links/reset", {"deleteContacts": True, "resetMrr": True}, format="json").json()
    assert body["linksDeleted"] == 1
    assert ProductLink.objects.filter(company=foreign, external_org_id=foreign_org).exists()
    assert Contact.objects.filter(company=foreign).exists()
    assert Account.objects.get(company=foreign).mrr == 1000
