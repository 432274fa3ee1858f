"""The customer overview's remaining parts (issue 14 items 5–7, SPEC §9):
the roles matrix of the page's actions, Suspend…/Reactivate… through desk's
services, the admin Explain (the same answer as `…/explain`), and the
cross-app timeline (newest first, in words, a fixed number of queries)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from companies.models import Account, CompanyStatus
from tests.entitlements.conftest import DEMO_CATALOG
from tests.entitlements.roles import staff_user
from tests.factories.companies import CompanyFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(product):
    call_command("load_catalog", str(DEMO_CATALOG), stdout=io.StringIO())
    return product


@pytest.fixture
def company(catalog):
    from companies.actors import Actor
    from entitlements.models import Tier
    from entitlements.services import tier_apply

    company = CompanyFactory(name="Massive Dynamic", short_id="massive")
    ProductLinkFactory(product=catalog, company=company, external_org_id="org_md_1")
    tier_apply(company=company, tier=Tier.objects.get(product=catalog, code="free"), actor=Actor.system("signup"))
    return company


def _action_url(company, name: str) -> str:
    return reverse("admin:companies_company_action", args=[company.pk, name])


# --- Roles × actions (SPEC §9) ---------------------------------------------------------------

SUPPORT, BILLING = "Support", "Billing admin"
# action on the company page -> the roles that may run it
ACTION_ROLES = {
    "metering_adjust_usage": {SUPPORT, BILLING},
    "credits_grant_action": {SUPPORT, BILLING},
    "entitlements_override_access": {SUPPORT, BILLING},
    "entitlements_apply_tier": {BILLING},  # a tier change: not Support
    "credits_freeze_action": {BILLING},
    "credits_unfreeze_action": {BILLING},
    "desk_suspend": {BILLING},
    "desk_reactivate": {BILLING},
    "send_statement": {BILLING},
    "billing_subscribe": {BILLING},
    "billing_create_customer": {BILLING},
    "desk_merge_action": {BILLING},
}


@pytest.mark.parametrize("role", [SUPPORT, BILLING])
@pytest.mark.parametrize("action", sorted(ACTION_ROLES))
def test_page_actions_follow_the_roles(client, company, role, action):
    client.force_login(staff_user(role, "staffer"))
    allowed = role in ACTION_ROLES[action]
    page = client.get(reverse("admin:companies_company_change", args=[company.pk])).content.decode()
    assert (f'data-action="{action}"' in page) is allowed
    response = client.get(_action_url(company, action))
    assert response.status_code == (200 if allowed else 403)
    if not allowed:
        assert 'id="forbidden"' in response.content.decode()  # inside the admin layout
    changelist = client.get(reverse("admin:companies_company_changelist")).content.decode()
    assert (f'value="{action}"' in changelist) is allowed  # nor in the list's action menu


def test_support_cannot_apply_a_tier_even_by_posting_the_list_action(client, company):
    from entitlements.models import FeatureAccess, Tier

    client.force_login(staff_user(SUPPORT, "sam"))
    pro = Tier.objects.get(code="pro")
    client.post(
        reverse("admin:companies_company_changelist"),
        {"action": "entitlements_apply_tier", "_selected_action": [str(company.pk)], "apply": "yes",
         "tier": str(pro.pk), "reason": "sneaky"},
    )
    assert not FeatureAccess.objects.filter(company=company, tier=pro).exists()


@pytest.mark.parametrize(
    ("role", "url", "allowed"),
    [
        (SUPPORT, "/admin/companies/apikey/", False),  # no API keys
        (BILLING, "/admin/companies/apikey/", True),
        (SUPPORT, "/admin/companies/servicecredential/", False),
        (BILLING, "/admin/companies/servicecredential/", True),
        (SUPPORT, "/admin/entitlements/tier/add/", False),  # no catalog edits
        (BILLING, "/admin/entitlements/tier/add/", True),
        (SUPPORT, "/admin/entitlements/feature/add/", False),
        (BILLING, "/admin/entitlements/feature/add/", True),
    ],
)
def test_pages_follow_the_roles(client, catalog, role, url, allowed):
    client.force_login(staff_user(role, "staffer"))
    assert client.get(url).status_code == (200 if allowed else 403)


def test_refunds_and_catalog_edits_are_billing_admin_only():
    from django.contrib.auth.models import Permission

    from companies.roles import BILLING_ADMIN, SUPPORT as SUPPORT_ROLE, resolve_permissions

    labels = [f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")]
    support, billing = resolve_permissions(labels, SUPPORT_ROLE), resolve_permissions(labels, BILLING_ADMIN)
    billing_only = [
        "billing.refund_creditpurchase", "entitlements.apply_tier", "companies.suspend_account",
        "entitlements.change_tier", "entitlements.change_feature", "companies.add_apikey", "credits.freeze_wallet",
    ]
    for label in billing_only:
        assert label in billing and label not in support, label
    for label in ["metering.adjust_usage", "credits.grant_credits", "entitlements.change_featureaccess"]:
        assert label in support and label in billing, label


def test_override_access_previews_then_sets_the_override(client, company, catalog):
    from entitlements.models import Feature, FeatureAccess

    client.force_login(staff_user(SUPPORT, "sam"))
    url = _action_url(company, "entitlements_override_access")
    ai_credit = Feature.objects.get(product=catalog, code="ai_credit")
    data = {"apply": "yes", "feature": str(ai_credit.pk), "quantity_limit": "500", "source": "promotion",
            "valid_until": "2099-01-31 12:00", "reason": ""}
    refused = client.post(url, data).content.decode()
    assert "This field is required." in refused and 'class="errornote"' in refused
    preview = client.post(url, {**data, "reason": "launch week"}).content.decode()
    assert "Limit: 100 → 500." in preview and "promotion override until 31 Jan 2099" in preview
    assert FeatureAccess.objects.get(company=company, feature=ai_credit).source == "subscription"  # nothing yet
    done = client.post(url, {**data, "reason": "launch week", "confirmed": "True"})
    assert done.status_code == 302
    row = FeatureAccess.objects.get(company=company, feature=ai_credit)
    assert (row.source, row.reason, row.effective_at(timezone.now()).quantity_limit) == ("promotion", "launch week", 500)


# --- Suspend / Reactivate ---------------------------------------------------------------------


def test_suspend_and_reactivate_from_the_company_page(client, company, catalog):
    from insights.models import AccountStatusChange

    client.force_login(staff_user(BILLING, "bea"))
    url = _action_url(company, "desk_suspend")
    form = client.get(url).content.decode()
    assert 'id="suspend-form"' in form and "→ <strong>Suspended</strong>" in form  # what will change

    refused = client.post(url, {"apply": "yes", "product": str(catalog.pk), "reason": ""}).content.decode()
    assert "This field is required." in refused and 'class="errornote"' in refused  # next to the field and at the top
    assert Account.objects.get(company=company).status != CompanyStatus.SUSPENDED

    done = client.post(url, {"apply": "yes", "product": str(catalog.pk), "reason": "Chargeback fraud"})
    assert done.status_code == 302 and done.url == reverse("admin:companies_company_change", args=[company.pk])
    assert Account.objects.get(company=company).status == CompanyStatus.SUSPENDED
    page = client.get(done.url).content.decode()
    assert "Reactivate…" in page

    url = _action_url(company, "desk_reactivate")
    client.post(url, {"apply": "yes", "product": str(catalog.pk), "reason": "Chargeback won"})
    assert Account.objects.get(company=company).status != CompanyStatus.SUSPENDED
    causes = list(AccountStatusChange.objects.filter(company=company).order_by("created_at").values_list("cause", "reason"))
    assert causes[-2:] == [("staff_suspend", "Chargeback fraud"), ("staff_reactivate", "Chargeback won")]


# --- Explain ---------------------------------------------------------------------------------


def test_the_why_link_opens_the_same_explanation_as_the_api(client, api, company, catalog):
    from metering.services import usage_set

    usage_set(product_id=catalog.pk, company_id=company.pk, feature_code="ai_credit", absolute_value=100, reason="test")
    client.force_login(staff_user(SUPPORT, "sam"))
    page = client.get(reverse("admin:companies_company_change", args=[company.pk])).content.decode()
    url = reverse("admin:metering_feature_explain", args=[company.pk, catalog.pk, "ai_credit"])
    assert f'href="{url}"' in page  # the feature row's "why?"

    explained = client.get(url).content.decode()
    answer = api.get(f"/api/v1/companies/{company.pk}/features/ai_credit/explain").json()
    assert answer["canUse"] is False and answer["status"] == "limit_reached"
    assert answer["reason"] in explained
    for rule in answer["rules"]:
        assert f'data-rule="{rule["rule"]}" data-passed="{str(rule["passed"]).lower()}"' in explained
        assert rule["detail"] in explained
    for layer in answer["layers"]:
        assert f'data-source="{layer["source"]}"' in explained
    assert answer["tier"]["name"] in explained
    assert 'id="forbidden"' not in explained


def test_explain_of_a_feature_the_tier_lacks(client, company, catalog):
    client.force_login(staff_user(SUPPORT, "sam"))
    explained = client.get(reverse("admin:metering_feature_explain", args=[company.pk, catalog.pk, "sso"])).content.decode()
    assert 'data-rule="access_granted" data-passed="false"' in explained


# --- Timeline --------------------------------------------------------------------------------


def _history(company, catalog, rounds: int, start: int = 0) -> None:
    """`rounds` of everything: access changes, usage corrections, grants,
    a freeze, subscriptions, invoices and status changes."""
    from billing.models import Invoice
    from companies.actors import Actor
    from credits.services import credits_grant
    from credits.models import Wallet
    from credits.services.wallets import wallet_freeze, wallet_unfreeze
    from desk.services import account_reactivate, account_suspend
    from entitlements.models import Tier
    from entitlements.services import tier_apply
    from metering.services import usage_adjust
    from tests.factories.billing import SubscriptionFactory

    tiers = [Tier.objects.get(product=catalog, code=code) for code in ("pro", "free")]
    for n in range(start, start + rounds):
        tier_apply(company=company, tier=tiers[n % 2], actor=Actor.system("test"), reason=f"round {n}")
        usage_adjust(product_id=catalog.pk, company_id=company.pk, feature_code="ai_credit", delta=3,
                     reason=f"double count {n}", performed_by="user:sam")
        credits_grant(company_id=company.pk, product_id=catalog.pk, amount=100 + n, reason=f"goodwill {n}", actor="user:sam")
        wallet = Wallet.objects.get(company=company, product=catalog)
        wallet_freeze(wallet=wallet, reason=f"fraud check {n}", actor="user:bea")
        wallet_unfreeze(wallet=wallet, reason=f"cleared {n}", actor="user:bea")
        SubscriptionFactory(company=company, product=catalog, tier=tiers[0])
        Invoice.objects.create(company=company, product=catalog, stripe_invoice_id=f"in_{company.pk.hex[:6]}_{n}",
                               stripe_customer_id="cus_1", number=f"INV-{n}", status="paid", currency="eur",
                               total=249900, amount_paid=249900)
        account_suspend(company=company, product_id=catalog.pk, reason=f"chargeback {n}", actor="user:bea")
        account_reactivate(company=company, product_id=catalog.pk, reason=f"won {n}", actor="user:bea")


def test_timeline_shows_every_app_newest_first_in_words(company, catalog):
    from desk.selectors import company_timeline

    _history(company, catalog, rounds=1)
    timeline = company_timeline(company_id=company.pk, per_page=100)
    kinds = {entry.kind for entry in timeline.entries}
    assert {"access", "usage", "credits", "wallet", "subscription", "invoice", "status"} <= kinds
    times = [entry.at for entry in timeline.entries]
    assert times == sorted(times, reverse=True)
    text = "\n".join(f"{e.title} | {e.who} | {e.why}" for e in timeline.entries)
    assert "chat · Free → chat · Pro" in text  # tier names, not ids
    assert str(company.feature_access.first().tier_id) not in text
    assert "2,499.00 EUR" in text and "249900" not in text  # money in currency units
    assert "Suspended (chat)" in text and "chargeback 0" in text and "user:bea" in text
    assert "Usage of AI credits corrected 0 → 3 (+3) | user:sam | double count 0" in text
    assert "goodwill 0" in text


def test_timeline_pages_and_queries_do_not_grow_with_history(company, catalog, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from desk.selectors import company_timeline

    _history(company, catalog, rounds=1)
    with CaptureQueriesContext(connection) as small:
        company_timeline(company_id=company.pk, page=1, per_page=5)
    _history(company, catalog, rounds=4, start=1)
    with django_assert_max_num_queries(len(small.captured_queries)):
        first = company_timeline(company_id=company.pk, page=1, per_page=5)
    with django_assert_max_num_queries(len(small.captured_queries)):
        second = company_timeline(company_id=company.pk, page=2, per_page=5)
    assert first.has_next and second.has_previous
    assert first.entries[-1].at >= second.entries[0].at
    assert not set(map(id, first.entries)) & set(map(id, second.entries))


def test_timeline_tab_on_the_company_page(client, company, catalog):
    _history(company, catalog, rounds=2)
    client.force_login(staff_user(SUPPORT, "sam"))
    url = reverse("admin:companies_company_change", args=[company.pk])
    page = client.get(url).content.decode()
    assert 'id="company-timeline"' in page and "Timeline" in page
    older = client.get(url, {"tab": "timeline", "timeline_page": 2}).content.decode()
    assert "panelTab: 'timeline'" in older  # the timeline's pages open on their tab
    assert "timeline-newer" in older
    assert client.get(url, {"timeline_page": "x"}).status_code == 200
