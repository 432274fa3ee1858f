"""A support agent's day in a real browser (Playwright + Debian's Chromium):
log in, find a company by its external org id, raise a feature's limit with
a reason, apply a tier through the action, and see both in the history."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from django.core.management import call_command

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEMO_CATALOG = Path(__file__).resolve().parents[2] / "entitlements" / "catalogs" / "demo.json"
PASSWORD = "support-password-for-tests-1"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture
def browser_page(monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    # Playwright's sync API runs an event loop in this thread; the Django ORM
    # calls the test makes around it are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from django.db import connections
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
            # While Playwright's loop runs, Django keeps this thread's ORM
            # connections per context; close them so the test database can go.
            connections.close_all()


@pytest.fixture
def support_world(transactional_db):
    from companies.models import Product
    from companies.actors import Actor
    from entitlements.models import Tier
    from entitlements.services import tier_apply
    from tests.entitlements.roles import staff_user
    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    call_command("load_catalog", str(DEMO_CATALOG), stdout=io.StringIO())
    product = Product.objects.get(code="chat")
    company = CompanyFactory(name="Initech GmbH", short_id="initech")
    ProductLinkFactory(product=product, company=company, external_org_id="org_initech_7")
    decoy = CompanyFactory(name="Initrode", short_id="initrode")
    ProductLinkFactory(product=product, company=decoy, external_org_id="org_initrode_8")
    tier_apply(company=company, tier=Tier.objects.get(product=product, code="free"), actor=Actor.system("signup"))
    staff_user("Support", "sally", password=PASSWORD)
    return company


def test_support_raises_a_limit_and_applies_a_tier(live_server, browser_page, support_world):
    from entitlements.models import FeatureAccess

    page = browser_page
    company = support_world

    # Log in as a Support user.
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "sally")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")

    # Find the company by its external org id.
    page.goto(f"{live_server.url}/admin/companies/company/")
    page.fill("#searchbar", "org_initech_7")
    page.press("#searchbar", "Enter")
    page.wait_for_load_state()
    results = page.locator("#result_list tbody tr")
    assert results.count() == 1
    assert "Initrode" not in page.inner_text("#result_list")
    results.first.locator("th a, td a").first.click()
    page.wait_for_load_state()
    assert "Initech GmbH" in page.inner_text("#content")

    # Raise the ai_credit limit with a reason, in the feature access inline
    # of the company page (Support may edit access, not the company itself).
    prefix = page.evaluate(
        """() => [...document.querySelectorAll("select[id$='-feature']")]
                 .find(s => s.selectedOptions[0] && s.selectedOptions[0].text.includes("(ai_credit)"))
                 .id.replace(/^id_/, "").replace(/-feature$/, "")"""
    )
    assert page.locator("#id_name").count() == 0  # the company's own fields are read-only
    page.fill(f"#id_{prefix}-quantity_limit", "5000")
    page.click("input[name=_save]")
    page.wait_for_load_state()
    assert "Give a reason for this change" in page.inner_text("#content")  # refused without a reason
    page.fill(f"#id_{prefix}-quantity_limit", "5000")
    page.fill(f"#id_{prefix}-reason", "Goodwill: outage on 3 March")
    page.click("input[name=_save]")
    page.wait_for_load_state()
    assert page.locator(".messagelist .success").count() == 1
    ai_credit = FeatureAccess.objects.get(company=company, feature__code="ai_credit")
    assert ai_credit.quantity_limit == 5000

    # Apply the Pro tier through the company action.
    page.goto(f"{live_server.url}/admin/companies/company/?q=org_initech_7")
    page.check(f"input.action-select[value='{company.pk}']")
    page.select_option("select[name=action]", value="entitlements_apply_tier")
    page.click("button[name=index]")
    page.wait_for_selector("#apply-tier-form")
    page.select_option("#id_tier", label="chat · Pro (pro)")
    page.fill("#id_overrides", '{"messages": {"quantityLimit": 250000}}')
    page.fill("#id_reason", "Upgraded to Pro on the phone")
    page.click("#apply-tier-form input[type=submit]")
    page.wait_for_load_state()
    assert "tier pro applied" in page.inner_text(".messagelist")
    assert FeatureAccess.objects.get(company=company, feature__code="sso").tier.code == "pro"

    # Both changes, with who and why, on the company's feature access history.
    page.goto(f"{live_server.url}/admin/companies/company/{company.pk}/change/")
    page.click("a.feature-access-history-link")
    page.wait_for_load_state()
    history = page.inner_text("table.feature-access-history")
    assert "Goodwill: outage on 3 March" in history
    assert "Upgraded to Pro on the phone" in history
    assert "user:sally" in history
    assert "5000" in history and "250000" in history

    # And the access row's own history page shows the limit change.
    page.goto(f"{live_server.url}/admin/entitlements/featureaccess/{ai_credit.pk}/history/")
    own = page.inner_text("#change-history")
    assert "Goodwill: outage on 3 March" in own and "user:sally" in own
