"""Merging two duplicates from the admin in a real browser (Playwright +
Debian's Chromium, 1366×768): a Billing admin opens the duplicate, clicks
*Merge into…*, is refused without a reason, previews what will change,
merges, and sees the tombstone. A Support user has no such button.
Screenshots: docs/screenshots/merge-*.png."""

from __future__ import annotations

import pytest

from tests.browser.test_support_workflow import (  # noqa: F401 - fixtures and settings shared with the support test
    CHROMIUM,
    PASSWORD,
    SCREENSHOTS,
    _no_sideways_scroll,
    _shot,
    browser_page,
    pytestmark,
)


@pytest.fixture
def duplicates(transactional_db):
    from companies.models import Product
    from credits.services import credits_grant
    from tests.entitlements.roles import staff_user
    from tests.factories.companies import CompanyFactory, ContactFactory, ProductFactory, ProductLinkFactory

    product = ProductFactory(code="chat", name="Chat App")
    kept = CompanyFactory(name="Globex Corporation", short_id="globex", domain="globex.com")
    duplicate = CompanyFactory(name="Globex Corp (import)", short_id="globex-import", domain="globex.com")
    ProductLinkFactory(product=product, company=kept, external_org_id="org_globex")
    ProductLinkFactory(product=product, company=duplicate, external_org_id="import_globex_1")
    ContactFactory(company=kept, email="hank@globex.com", name="Hank Scorpio", is_primary=True)
    ContactFactory(company=duplicate, email="hank@globex.com", name="Hank Scorpio", is_primary=True)
    ContactFactory(company=duplicate, email="frank@globex.com", name="Frank Grimes")
    credits_grant(
        company_id=duplicate.pk, product_id=Product.objects.get(code="chat").pk, amount=40, bucket="promotional",
        reason="welcome", actor="user:t",
    )
    staff_user("Billing admin", "bea", password=PASSWORD)
    staff_user("Support", "sally", password=PASSWORD)
    return kept, duplicate


def _login(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def test_billing_admin_merges_two_duplicates(live_server, browser_page, duplicates):
    from companies.models import Company, Contact
    from credits.models import Wallet

    page = browser_page
    kept, duplicate = duplicates
    _login(page, live_server, "bea")

    # Find the duplicate and open it.
    page.goto(f"{live_server.url}/admin/companies/company/?q=import_globex_1")
    page.locator("#result_list tbody tr").first.locator("th a, td a").first.click()
    page.wait_for_load_state()
    assert page.input_value("#id_name") == "Globex Corp (import)"

    # Merge into… from the company page: the intermediate form.
    page.click("#company-actions a[data-action=desk_merge_action]")
    page.wait_for_selector("#merge-company-form")
    page.fill("#id_into", "globex")
    page.click("#merge-company-form input[type=submit]")
    page.wait_for_load_state()
    assert "This field is required." in page.inner_text("#merge-company-form")  # the reason, next to its field
    assert not Company.objects.get(pk=duplicate.pk).merged_into_id

    page.fill("#id_into", "globex")
    page.fill("#id_reason", "Same customer, imported twice from the CRM")
    page.click("#merge-company-form input[type=submit]")
    page.wait_for_selector("#merge-preview")
    preview = page.inner_text("#merge-preview")
    assert "Globex Corp (import) → Globex Corporation" in preview
    assert "2 contacts move" in preview and "1 product links move" in preview and "1 credit wallets" in preview
    assert _no_sideways_scroll(page)
    _shot(page, "merge-1-preview")
    assert not Company.objects.get(pk=duplicate.pk).merged_into_id  # a preview changes nothing

    page.click("#merge-company-form input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/companies/company/{kept.pk}/change/")
    assert "was merged into Globex Corporation" in page.inner_text(".messagelist")
    _shot(page, "merge-2-kept-company")
    assert Company.objects.get(pk=duplicate.pk).merged_into_id == kept.pk
    assert sorted(Contact.objects.filter(company=kept).values_list("email", flat=True)) == [
        "frank@globex.com", "hank@globex.com",
    ]
    assert Wallet.objects.get(company=kept).balance_promotional == 40

    # The duplicate's page says it is a tombstone, and where it went.
    page.goto(f"{live_server.url}/admin/companies/company/{duplicate.pk}/change/")
    banner = page.inner_text("#company-tombstone")
    assert "Globex Corporation" in banner and "Same customer, imported twice" in banner and "user:bea" in banner
    _shot(page, "merge-3-tombstone")


def test_support_has_no_merge_button(live_server, browser_page, duplicates):
    page = browser_page
    _, duplicate = duplicates
    _login(page, live_server, "sally")
    page.goto(f"{live_server.url}/admin/companies/company/{duplicate.pk}/change/")
    page.wait_for_selector("#company-actions")
    assert page.locator("#company-actions a[data-action=desk_merge_action]").count() == 0
    page.goto(f"{live_server.url}/admin/companies/company/{duplicate.pk}/do/desk_merge_action/")
    assert page.locator("#forbidden").count() == 1
