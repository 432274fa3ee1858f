"""Health in the admin (SPEC §9): the company list's column and risk filter,
the customer overview's header fact and Health tab, *Recompute health*."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from companies.models import Account
from insights.models import AccountHealth
from tests.entitlements.roles import staff_user
from tests.factories.companies import CompanyFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 15, 3, 0, tzinfo=UTC)


def _scored(product, name, score, risk):
    company = CompanyFactory(name=name)
    ProductLinkFactory(product=product, company=company, external_org_id=f"org_{name}")
    account = Account.objects.get(company=company, product=product)
    AccountHealth.objects.create(
        account=account, score=score, risk_level=risk, computed_at=NOW,
        components=[{"name": "recency", "value": score, "weight": 15, "detail": f"{name} detail."}],
    )
    return company


def test_company_list_shows_health_and_filters_by_risk(client, product):
    _scored(product, "Healthy Co", 88, "low")
    _scored(product, "Shaky Co", 18, "critical")
    unscored = CompanyFactory(name="Fresh Co")
    ProductLinkFactory(product=product, company=unscored)
    client.force_login(staff_user("Support", "sam"))
    url = reverse("admin:companies_company_changelist")

    listing = client.get(url).content.decode()
    assert "88 · Low" in listing and "18 · Critical" in listing

    critical = client.get(url, {"risk": "critical"}).content.decode()
    assert "Shaky Co" in critical and "Healthy Co" not in critical and "Fresh Co" not in critical
    never = client.get(url, {"risk": "none"}).content.decode()
    assert "Fresh Co" in never and "Shaky Co" not in never


def test_company_list_health_column_is_prefetched(admin_client, product, django_assert_max_num_queries):
    for index in range(20):
        _scored(product, f"Co {index}", 50 + index, "medium")
    with django_assert_max_num_queries(18):
        response = admin_client.get(reverse("admin:companies_company_changelist"))
    assert response.status_code == 200


def test_overview_header_and_health_tab(client, product):
    company = _scored(product, "Shaky Co", 18, "critical")
    client.force_login(staff_user("Support", "sam"))
    page = client.get(reverse("admin:companies_company_change", args=[company.pk])).content.decode()
    assert "chat: 18 · Critical risk" in page  # the header fact
    assert 'id="health-panel"' in page and "Shaky Co detail." in page
    assert "Recompute health" in page


def test_recompute_from_the_company_page_scores_now(client, product):
    company = CompanyFactory(name="Fresh Co")
    ProductLinkFactory(product=product, company=company)
    client.force_login(staff_user("Support", "sam"))
    response = client.get(reverse("admin:companies_company_action", args=[company.pk, "company_recompute_health"]))
    assert response.status_code == 302
    assert AccountHealth.objects.filter(account__company=company).count() == 1


def test_health_list_is_read_only_for_billing_admin(client, product):
    _scored(product, "Shaky Co", 18, "critical")
    client.force_login(staff_user("Billing admin", "bea"))
    response = client.get(reverse("admin:insights_accounthealth_changelist"))
    assert response.status_code == 200
    assert "Shaky Co" in response.content.decode()
    assert client.get(reverse("admin:insights_accounthealth_add")).status_code == 403
