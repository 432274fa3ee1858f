"""The admin dashboard (SPEC §9): revenue charts over 12 months, at-risk
companies, failing Stripe deliveries, webhooks and notification endpoints,
for Support and Billing admin, in a fixed number of queries."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from billing.models import StripeWebhookEvent
from companies.models import Account
from insights.dashboard import _months_back
from insights.models import AccountHealth, RevenueSnapshot
from notifications.models import WebhookEndpoint
from tests.entitlements.roles import staff_user
from tests.factories.companies import CompanyFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def year_of_revenue(product):
    """Ten companies with a year of monthly snapshots; one at critical risk."""
    today = timezone.now().astimezone(UTC).date()
    first = _months_back(today, 12)
    for index in range(10):
        company = CompanyFactory(name=f"Customer {index}")
        ProductLinkFactory(product=product, company=company, external_org_id=f"org_{index}")
        account = Account.objects.get(company=company, product=product)
        day = first
        while day <= today:
            RevenueSnapshot.objects.create(
                account=account, company=company, product=product, day=day, mrr=1000 * (index + 1), currency="usd"
            )
            day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        AccountHealth.objects.create(
            account=account, score=15 if index == 0 else 80, risk_level="critical" if index == 0 else "low",
            components=[], computed_at=timezone.now(),
        )
    StripeWebhookEvent.objects.create(stripe_event_id="evt_bad", type="invoice.paid", payload={}, status="failed",
                                      processing_error="boom")
    WebhookEndpoint.objects.create(product=product, url="https://hooks.example/x", secret="whsec_x",
                                   failing_since=timezone.now() - timedelta(days=1))


def _chart_data(page: str, chart_id: str) -> dict:
    block = page.split(f'id="{chart_id}"', 1)[1]
    raw = re.search(r'data-value="([^"]*)"', block).group(1)
    return json.loads(raw.replace("&quot;", '"').replace("&#x27;", "'").replace("&amp;", "&"))


@pytest.mark.parametrize("role", ["Support", "Billing admin"])
def test_dashboard_shows_charts_at_risk_and_failures(client, year_of_revenue, role):
    client.force_login(staff_user(role, "staff"))
    response = client.get("/admin/")
    assert response.status_code == 200
    page = response.content.decode()
    for chart_id in ("chart-mrr", "chart-movements", "chart-customers", "chart-churn", "chart-arpu", "chart-credits"):
        assert f'id="{chart_id}"' in page, chart_id
    mrr = _chart_data(page, "chart-mrr")
    assert len(mrr["labels"]) == 12
    assert mrr["datasets"][0]["data"][-1] == 550.0  # 55,000 cents = Σ 1000 × (1..10), in units
    assert _chart_data(page, "chart-customers")["datasets"][0]["data"][-1] == 10
    movements = _chart_data(page, "chart-movements")
    assert [d["label"] for d in movements["datasets"]] == ["New", "Expansion", "Reactivation", "Contraction", "Churned"]
    assert 'id="dashboard-at-risk"' in page and "Customer 0" in page and "15 · Critical" in page
    assert "Customer 3" not in page.split('id="dashboard-at-risk"', 1)[1].split("</table>", 1)[0]
    assert 'id="dashboard-webhooks"' in page and "invoice.paid" in page
    assert 'id="dashboard-deliveries"' in page
    assert 'id="failing-webhook-endpoints"' in page
    assert 'id="dashboard-company-search"' in page
    assert "cdn" not in page.lower()  # Chart.js is unfold's static file
    assert "unfold/js/chart/chart.js" in page


def test_dashboard_queries_do_not_grow_with_data(client, product, year_of_revenue, django_assert_max_num_queries):
    client.force_login(staff_user("Billing admin", "bea"))
    client.get("/admin/")  # warm the revenue cache and the permission caches of the session
    with django_assert_max_num_queries(14):
        assert client.get("/admin/").status_code == 200
    from django.core.cache import cache

    cache.clear()
    for index in range(10, 30):
        company = CompanyFactory(name=f"More {index}")
        ProductLinkFactory(product=product, company=company)
    with django_assert_max_num_queries(16):  # the revenue figures read again: two more
        assert client.get("/admin/").status_code == 200


def test_a_staff_member_without_insights_rights_sees_only_the_search(client, year_of_revenue):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("viewer", password="pw-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_company", content_type__app_label="companies"))
    client.force_login(user)
    page = client.get("/admin/").content.decode()
    assert 'id="dashboard-company-search"' in page
    assert 'id="chart-mrr"' not in page and 'id="dashboard-at-risk"' not in page and "invoice.paid" not in page


def test_dashboard_switches_product(client, product, other_product, year_of_revenue):
    client.force_login(staff_user("Support", "sam"))
    page = client.get("/admin/", {"product": other_product.code}).content.decode()
    assert _chart_data(page, "chart-mrr")["datasets"][0]["data"][-1] == 0
    assert other_product.name in page
