"""The admin dashboard in a real browser (Playwright + Debian's Chromium) at
1366×768: the revenue charts draw with unfold's Chart.js (a static file, no
CDN), at-risk companies and failing webhooks show. Screenshot:
docs/screenshots/08-dashboard-charts.png (the README shows it)."""

from __future__ import annotations

from datetime import UTC, date

import pytest
from django.utils import timezone

from tests.browser.test_support_workflow import CHROMIUM, PASSWORD, SCREENSHOTS, browser_page  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason=f"needs Debian's Chromium at {CHROMIUM}"),
]


@pytest.fixture
def revenue_world(transactional_db):
    from billing.models import StripeWebhookEvent
    from companies.models import Account, Product
    from insights.dashboard import _months_back
    from insights.models import AccountHealth, RevenueSnapshot
    from tests.entitlements.roles import staff_user
    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    product = Product.objects.create(code="chat", name="Chat App")
    today = timezone.now().astimezone(UTC).date()
    months = []
    day = _months_back(today, 12)
    while day <= today:
        months.append(day)
        day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    for index in range(12):
        company = CompanyFactory(name=f"Customer {index:02d}")
        ProductLinkFactory(product=product, company=company, external_org_id=f"org_{index}")
        account = Account.objects.get(company=company, product=product)
        for month_index, first in enumerate(months):
            active = index <= month_index + 2 and not (index == 5 and month_index >= 9)
            RevenueSnapshot.objects.create(account=account, company=company, product=product, day=first,
                                           mrr=(4_900 + 1_000 * index + 500 * month_index) if active else 0, currency="usd")
        critical = index in (5, 7)
        AccountHealth.objects.create(account=account, score=18 + index if critical else 70 + index,
                                     risk_level="critical" if critical else "low", components=[], computed_at=timezone.now())
    StripeWebhookEvent.objects.create(stripe_event_id="evt_failed_1", type="invoice.payment_succeeded", payload={},
                                      status="failed", processing_error="No such customer: cus_gone")
    staff_user("Billing admin", "bianca", password=PASSWORD)


def test_dashboard_draws_its_charts(live_server, browser_page, revenue_world):  # noqa: F811
    page = browser_page
    page.set_default_timeout(60_000)  # a loaded machine: the first page compiles templates
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "bianca")
    page.fill("#id_password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    page.wait_for_load_state("networkidle")

    drawn = page.evaluate(
        """() => [...document.querySelectorAll("#insights-dashboard canvas.chart")]
                 .map(canvas => Boolean(window.Chart && Chart.getChart(canvas)))"""
    )
    assert drawn == [True] * 6
    assert "Customer 05" in page.inner_text("#dashboard-at-risk")
    assert "invoice.payment_succeeded" in page.inner_text("#dashboard-failing")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "08-dashboard-charts.png"), full_page=True)
