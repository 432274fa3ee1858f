"""The unfold admin's customer overview, company list, dashboard search and
forbidden pages (SPEC §9, docs/admin.md)."""

import pytest
from django.urls import reverse

from companies.models import Account
from tests.entitlements.roles import staff_user
from tests.factories.companies import CompanyFactory, ContactFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def company(product):
    company = CompanyFactory(name="Massive Dynamic", short_id="massive")
    ProductLinkFactory(product=product, company=company, external_org_id="org_md_1")
    Account.objects.filter(company=company, product=product).update(mrr=249900, currency="usd")
    ContactFactory(company=company, email="nina@massive.example")
    return company


def test_overview_shows_facts_and_role_filtered_buttons(client, company):
    client.force_login(staff_user("Support", "sam"))
    page = client.get(reverse("admin:companies_company_change", args=[company.pk])).content.decode()
    assert 'id="company-summary"' in page
    assert "2,499.00 USD" in page and "249900" not in page  # currency units, never cents
    assert "Adjust usage…" in page and "Grant credits…" in page
    assert "Override access…" in page
    assert "Freeze wallet" not in page and "Apply tier…" not in page  # Billing admin only (tier changes)
    assert 'id="company-feature-rows"' in page  # one row per feature, from the decision function


def test_billing_admin_sees_the_freeze_button(client, company):
    client.force_login(staff_user("Billing admin", "bea"))
    page = client.get(reverse("admin:companies_company_change", args=[company.pk])).content.decode()
    assert "Freeze wallet…" in page and "Apply tier…" in page and "Suspend…" in page


def test_an_action_starts_from_the_company_page_for_that_company(client, company):
    client.force_login(staff_user("Billing admin", "bea"))
    url = reverse("admin:companies_company_action", args=[company.pk, "entitlements_apply_tier"])
    response = client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="apply-tier-form"' in page
    assert ">null<" not in page  # the overrides box starts empty
    assert reverse("admin:companies_company_change", args=[company.pk]) in page  # the way back
    # Without a reason nothing happens and the error is next to the field.
    refused = client.post(url, {"apply": "yes", "tier": "", "reason": ""})
    assert refused.status_code == 200
    assert "This field is required." in refused.content.decode()


def test_unknown_or_forbidden_page_action_answers_inside_the_admin(client, company):
    client.force_login(staff_user("Support", "sam"))
    response = client.get(reverse("admin:companies_company_action", args=[company.pk, "delete_selected"]))
    assert response.status_code == 403
    page = response.content.decode()
    assert 'id="forbidden"' in page and 'id="forbidden-back"' in page
    assert "Support" in page


def test_support_forbidden_page_is_inside_the_admin_layout(client):
    client.force_login(staff_user("Support", "sam"))
    response = client.get("/admin/companies/apikey/", HTTP_REFERER="http://testserver/admin/companies/company/")
    assert response.status_code == 403
    page = response.content.decode()
    assert 'id="forbidden"' in page
    assert 'href="http://testserver/admin/companies/company/"' in page  # back where they came from
    assert "Companies" in page  # the sidebar is there


def test_dashboard_search_box_finds_a_company_by_contact_email(client, company):
    client.force_login(staff_user("Support", "sam"))
    index = client.get("/admin/").content.decode()
    assert 'id="dashboard-company-search"' in index
    for query in ("nina@massive.example", "org_md_1", "massive", "Massive Dynamic"):
        listing = client.get(reverse("admin:companies_company_changelist"), {"q": query}).content.decode()
        assert "Massive Dynamic" in listing, query


def test_company_list_shows_mrr_in_currency_units(client, company):
    client.force_login(staff_user("Support", "sam"))
    listing = client.get(reverse("admin:companies_company_changelist")).content.decode()
    assert "chat 2,499.00 USD" in listing
    assert "Active" in listing  # the status column
