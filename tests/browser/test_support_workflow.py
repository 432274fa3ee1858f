"""A support agent's day in a real browser (Playwright + Debian's Chromium)
at a 1366×768 laptop screen, in the django-unfold admin: log in, find a
company by its external org id or a contact's email, raise a feature's limit
with a reason, apply a tier and adjust usage from the company page, see the
changes in the history, and meet a forbidden page inside the admin layout.
Screenshots go to docs/screenshots/ (the README shows them)."""

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
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}
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
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.set_default_timeout(90_000)  # a loaded CI machine; no assertion depends on it
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
    staff_user("Billing admin", "bea", password=PASSWORD)  # tier changes, suspend (SPEC §9)
    return company


def _login(page, live_server, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def test_support_raises_a_limit_and_applies_a_tier(live_server, browser_page, support_world):
    from entitlements.models import FeatureAccess

    page = browser_page
    company = support_world

    # Log in as a Support user.
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "sally")
    page.fill("#id_password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state()
    page.wait_for_url(f"{live_server.url}/admin/")

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
    page.click("button[name=_save]")
    page.wait_for_load_state()
    assert "Give a reason for this change" in page.inner_text("#content")  # refused without a reason
    page.fill(f"#id_{prefix}-quantity_limit", "5000")
    page.fill(f"#id_{prefix}-reason", "Goodwill: outage on 3 March")
    page.click("button[name=_save]")
    page.wait_for_load_state()
    assert page.locator(".messagelist .success").count() == 1
    ai_credit = FeatureAccess.objects.get(company=company, feature__code="ai_credit")
    # The raise is an override on top of the tier layer (issue 14 item 1).
    from django.utils import timezone

    assert ai_credit.effective_at(timezone.now()).quantity_limit == 5000

    # Apply the Pro tier through the company action (a Billing admin's).
    _login(page, live_server, "bea")
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
    page.click("button.company-panel-tab:has-text('Access history')")
    page.click("a.feature-access-history-link")
    page.wait_for_load_state()
    history = page.inner_text("table.feature-access-history")
    assert "Goodwill: outage on 3 March" in history
    assert "Upgraded to Pro on the phone" in history
    assert "user:sally" in history and "user:bea" in history
    assert "5000" in history and "250000" in history
    assert "chat · Free → chat · Pro" in history  # tier names, not ids
    assert str(FeatureAccess.objects.get(company=company, feature__code="sso").tier_id) not in history

    # And the access row's own history page shows the limit change.
    page.goto(f"{live_server.url}/admin/entitlements/featureaccess/{ai_credit.pk}/history/")
    own = page.inner_text("#change-history")
    assert "Goodwill: outage on 3 March" in own and "user:sally" in own


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def _no_sideways_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def _in_first_screen(page, selector: str) -> None:
    """The element is wholly inside the 1366×768 window at scroll 0 (a
    bounding box, not a timing)."""
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], (selector, box)
    assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"], (selector, box)


def _access_prefix(page, feature_code: str) -> str:
    return page.evaluate(
        """(code) => [...document.querySelectorAll("select[id$='-feature']")]
                 .find(s => s.selectedOptions[0] && s.selectedOptions[0].text.includes("(" + code + ")"))
                 .id.replace(/^id_/, "").replace(/-feature$/, "")""",
        feature_code,
    )


def _row(page, feature_code: str):
    return page.locator(f"#company-feature-rows tr.feature-row[data-feature={feature_code}]")


def test_support_works_from_the_company_page(live_server, browser_page, support_world):
    """The support workflows of issue 14 at 1366×768: find a customer by a
    contact's email, answer why a feature is blocked from the first screen
    (and its full explanation), raise a quota with a temporary override and
    see it fall back to the tier, adjust usage from the page, apply a tier
    and read which features it keeps, suspend and reactivate, and read it
    all on the timeline."""
    from datetime import timedelta

    from django.utils import timezone

    from companies.models import Account, CompanyStatus
    from entitlements.cache import invalidate_company_checks
    from entitlements.models import FeatureAccess
    from metering.services import usage_set
    from tests.factories.companies import ContactFactory

    page = browser_page
    company = support_world
    product_id = company.links.get().product_id
    ContactFactory(company=company, email="peter@initech.example", name="Peter Gibbons")
    # The customer has used all 100 AI credits of the Free tier this month.
    usage_set(product_id=product_id, company_id=company.pk, feature_code="ai_credit", absolute_value=100,
              reason="imported from the product")
    company_url = f"{live_server.url}/admin/companies/company/{company.pk}/change/"

    _login(page, live_server, "sally")
    _shot(page, "01-dashboard")

    # 1. Find the customer by a contact's email.
    page.goto(f"{live_server.url}/admin/companies/company/")
    page.fill("#searchbar", "peter@initech.example")
    page.press("#searchbar", "Enter")
    page.wait_for_load_state()
    assert page.locator("#result_list tbody tr").count() == 1
    listing = page.inner_text("#result_list")
    assert "Initech GmbH" in listing and "Initrode" not in listing
    assert "chat · Free" in listing  # the tier column, by name
    assert _no_sideways_scroll(page)
    _shot(page, "02-company-list")
    page.locator("#result_list tbody tr").first.locator("th a, td a").first.click()
    page.wait_for_load_state()

    # 2. Why can't Initech use AI credits? On the first screen, no scrolling.
    summary = page.inner_text("#company-summary").lower()
    assert "tier" in summary and "chat · free" in summary and "wallet" in summary and "subscription" in summary
    for selector in ("#company-summary", "#company-actions", "#company-feature-rows"):
        _in_first_screen(page, selector)
    row = _row(page, "ai_credit")
    assert "no" in row.locator("td").nth(4).inner_text()
    assert "100 of 100" in row.locator(".reason").get_attribute("title")
    _in_first_screen(page, "#company-feature-rows tr.feature-row[data-feature=ai_credit] .explain-link")
    actions = page.inner_text("#company-actions")
    assert "Adjust usage…" in actions and "Grant credits…" in actions and "Override access…" in actions
    for billing_only in ("Apply tier…", "Freeze wallet", "Suspend…"):
        assert billing_only not in actions  # Billing admin's (SPEC §9)
    assert _no_sideways_scroll(page)
    _shot(page, "03-company-overview")

    # ... and the full explanation, one click away.
    row.locator(".explain-link").click()
    page.wait_for_selector("#feature-explain")
    assert page.locator(".explain-rule[data-rule=within_limit][data-passed=false]").count() == 1
    assert page.locator(".explain-rule[data-rule=access_granted][data-passed=true]").count() == 1
    assert "100 of 100" in page.inner_text(".explain-reason")
    _shot(page, "08-explain")
    page.click("#explain-back")
    page.wait_for_url(company_url)

    # 3. Raise the quota with a temporary override (a promotion until tomorrow).
    prefix = _access_prefix(page, "ai_credit")
    until = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    page.fill(f"#id_{prefix}-quantity_limit", "500")
    page.select_option(f"#id_{prefix}-source", value="promotion")
    page.fill(f"#id_{prefix}-valid_until", until)
    page.fill(f"#id_{prefix}-reason", "Launch week: 500 credits until tomorrow")
    page.click("button[name=_save]")
    page.wait_for_load_state()
    assert page.locator(".messagelist .success").count() == 1
    page.goto(company_url)
    row = _row(page, "ai_credit")
    assert "yes" in row.locator("td").nth(4).inner_text()
    assert "promotion" in row.locator("td").nth(1).inner_text() and "until" in row.locator("td").nth(1).inner_text()

    # 4. Adjust usage from the page: refused without a reason, then done.
    page.click("#company-actions a[data-action=metering_adjust_usage]")
    page.wait_for_selector("#adjust-usage-form")
    page.select_option("#id_feature", label="chat · AI credits (ai_credit)")
    page.fill("#id_value", "-60")
    page.click("#adjust-usage-form input[type=submit]")
    assert page.locator("#id_reason:invalid").count() == 1  # the browser refuses it (the server too: tests/metering)
    assert "/do/metering_adjust_usage/" in page.url
    _shot(page, "04-adjust-usage-form")
    page.fill("#id_reason", "Double-counted import on 2 March")
    page.click("#adjust-usage-form input[type=submit]")
    page.wait_for_url(company_url)
    assert "100 → 40" in page.inner_text(".messagelist")

    # Usage over time: charts by day, week and month (unfold's Chart.js).
    page.click("button.company-panel-tab:has-text('Usage')")
    page.click("#usage-charts button[data-granularity=week]")
    # wait_for, not is_visible(): the series is shown by the click's script, a moment later.
    page.locator(".usage-chart[data-feature=ai_credit] .usage-series[data-granularity=week] canvas").wait_for(
        state="visible", timeout=10_000
    )
    page.click("#usage-charts button[data-granularity=day]")
    page.locator("#company-panel-tabs").scroll_into_view_if_needed()
    _shot(page, "07-company-usage-tab")

    # A page Support may not see answers inside the admin, with a way back.
    page.goto(f"{live_server.url}/admin/companies/apikey/")
    assert page.locator("#forbidden").is_visible()
    assert page.locator("#nav-sidebar, nav").count() >= 1
    _shot(page, "06-forbidden")
    page.click("#forbidden-back")
    page.wait_for_load_state()
    assert "/admin/" in page.url

    # 5. A Billing admin applies Pro: the form says before it acts which
    # feature keeps its override, and the result says it again.
    _login(page, live_server, "bea")
    page.goto(company_url)
    page.click("#company-actions a[data-action=entitlements_apply_tier]")
    page.wait_for_selector("#apply-tier-form")
    assert page.input_value("#id_overrides") in ("", "{}")  # never pre-filled with null
    kept = page.inner_text("#apply-tier-companies .features-kept")
    assert "ai_credit (promotion override until" in kept
    page.select_option("#id_tier", label="chat · Pro (pro)")
    page.fill("#id_reason", "Upgraded to Pro on the phone")
    _shot(page, "05-apply-tier-form")
    page.click("#apply-tier-form input[type=submit]")
    page.wait_for_url(company_url)
    message = page.inner_text(".messagelist")
    assert "tier pro applied" in message and "kept because of an override: ai_credit (promotion override" in message
    assert "chat · Pro" in page.inner_text("#company-summary")
    assert "500" in _row(page, "ai_credit").inner_text()  # the override still wins

    # The promotion ends (its window moved into the past stands in for a day
    # passing): access falls back to what the tier gives, never off.
    FeatureAccess.objects.filter(company=company, feature__code="ai_credit").update(
        valid_from=timezone.now() - timedelta(days=2), valid_until=timezone.now() - timedelta(minutes=1)
    )
    invalidate_company_checks(company_id=company.pk)
    page.goto(company_url)
    row = _row(page, "ai_credit")
    assert "yes" in row.locator("td").nth(4).inner_text()
    access = row.locator("td").nth(1).inner_text()
    assert "promotion" not in access and "pro" in access  # the tier layer again
    assert "∞" in row.locator("td").nth(2).inner_text()  # Pro's unlimited AI credits

    # 6. Suspend, then reactivate (each with its reason, saying what changes).
    page.click("#company-actions a[data-action=desk_suspend]")
    page.wait_for_selector("#suspend-form")
    assert "→ Suspended" in page.inner_text("#account-status-preview")
    page.click("#suspend-form input[type=submit]")
    assert page.locator("#id_reason:invalid").count() == 1
    page.fill("#id_reason", "Chargeback fraud, card blocked")
    _shot(page, "10-suspend-form")
    page.click("#suspend-form input[type=submit]")
    page.wait_for_url(company_url)
    assert "suspended" in page.inner_text("#company-summary").lower()
    assert "no" in _row(page, "sso").locator("td").nth(4).inner_text()
    assert Account.objects.get(company=company).status == CompanyStatus.SUSPENDED
    page.click("#company-actions a[data-action=desk_reactivate]")
    page.wait_for_selector("#reactivate-form")
    page.fill("#id_reason", "Chargeback won")
    page.click("#reactivate-form input[type=submit]")
    page.wait_for_url(company_url)
    assert Account.objects.get(company=company).status != CompanyStatus.SUSPENDED
    assert "yes" in _row(page, "sso").locator("td").nth(4).inner_text()

    # 7. The timeline tells it all, newest first, with who and why.
    page.click("button.company-panel-tab:has-text('Timeline')")
    timeline = page.inner_text("#company-timeline")
    for words in ("Chargeback won", "Chargeback fraud, card blocked", "Upgraded to Pro on the phone",
                  "Double-counted import on 2 March", "Launch week: 500 credits until tomorrow",
                  "chat · Free → chat · Pro", "user:bea", "user:sally"):
        assert words in timeline, words
    assert timeline.index("Chargeback won") < timeline.index("Chargeback fraud")  # newest first
    page.locator("#company-panel-tabs").scroll_into_view_if_needed()
    _shot(page, "09-company-timeline")
