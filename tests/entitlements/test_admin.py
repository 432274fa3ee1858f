"""The support staff's screens (SPEC §9): feature access edits with a reason,
the Apply tier… action, read-only catalog for Support, history."""

import pytest
from django.urls import reverse
from django.utils import timezone

from entitlements.models import FeatureAccess, Tier
from entitlements.services import tier_apply
from companies.actors import Actor
from tests.entitlements.admin_helpers import form_data
from tests.entitlements.roles import staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def support(client):
    user = staff_user("Support", "sam")
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def billing_admin(client):
    user = staff_user("Billing admin", "bea")
    client.force_login(user)
    client.user = user
    return client


def access_url(access):
    return reverse("admin:entitlements_featureaccess_change", args=[access.pk])


@pytest.fixture
def pro_company(company, tiers):
    tier_apply(company=company, tier=tiers["pro"], actor=Actor.system("tests"))
    return company


def ai_access(company):
    return FeatureAccess.objects.get(company=company, feature__code="ai_credit")


# --- catalog is read-only for Support -----------------------------------------------------------


def test_support_sees_tiers_and_features_but_cannot_change_them(support, tiers, features):
    tier_url = reverse("admin:entitlements_tier_change", args=[tiers["pro"].pk])
    page = support.get(tier_url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    data = form_data(page.content.decode(), "tier_form")
    data["name"] = "Hacked"
    assert support.post(tier_url, data).status_code == 403
    assert Tier.objects.get(pk=tiers["pro"].pk).name == "Pro"
    feature_url = reverse("admin:entitlements_feature_change", args=[features["sso"].pk])
    assert support.post(feature_url, {"name": "x"}).status_code == 403
    assert support.get(reverse("admin:entitlements_tier_add")).status_code == 403


def test_billing_admin_edits_tier_features_inline(billing_admin, tiers):
    url = reverse("admin:entitlements_tier_change", args=[tiers["pro"].pk])
    data = form_data(billing_admin.get(url).content.decode(), "tier_form")
    rows = int(data["tier_features-TOTAL_FORMS"])
    index = next(i for i in range(rows) if data.get(f"tier_features-{i}-included_quantity") == "1000")
    data[f"tier_features-{index}-included_quantity"] = "1500"
    response = billing_admin.post(url, data)
    assert response.status_code == 302, response.content[:3000]
    assert tiers["pro"].tier_features.get(feature__code="ai_credit").included_quantity == 1500


# --- feature access page ----------------------------------------------------------------------------


def test_support_raises_a_limit_with_a_reason(support, pro_company):
    access = ai_access(pro_company)
    url = access_url(access)
    data = form_data(support.get(url).content.decode(), "featureaccess_form")
    data.update({"quantity_limit": "5000", "reason": "Goodwill for ticket #881"})
    response = support.post(url, data)
    assert response.status_code == 302, response.content[:3000]
    access.refresh_from_db()
    # Written as a manual override over the tier layer.
    assert access.effective_at(timezone.now()).quantity_limit == 5000 and access.source == "manual"
    assert access.overrides == {"quantity_limit": 5000}
    record = access.history.latest()
    assert record.history_change_reason == "Goodwill for ticket #881"
    assert record.history_user == support.user and record.actor == "user:sam"
    history = support.get(reverse("admin:entitlements_featureaccess_history", args=[access.pk])).content.decode()
    assert "Goodwill for ticket #881" in history and "user:sam" in history
    assert "quantity_limit" in history and "5000" in history  # the override's fields


@pytest.mark.parametrize(
    "changes, error_field",
    [
        ({"quantity_limit": "5000", "reason": ""}, "reason"),
        ({"quantity_limit": "-1", "reason": "x"}, "quantity_limit"),
        ({"included_quantity": "-1", "reason": "x"}, "included_quantity"),
        ({"config": "{not json", "reason": "x"}, "config"),
        ({"config": "[1, 2]", "reason": "x"}, "config"),
        ({"source": "gift", "reason": "x"}, "source"),
    ],
)
def test_bad_edits_are_form_errors_and_change_nothing(support, pro_company, changes, error_field):
    access = ai_access(pro_company)
    url = access_url(access)
    data = form_data(support.get(url).content.decode(), "featureaccess_form")
    data.update(changes)
    response = support.post(url, data)
    assert response.status_code == 200
    assert error_field in response.context["adminform"].form.errors
    fresh = ai_access(pro_company)
    assert (fresh.quantity_limit, fresh.included_quantity, fresh.config) == (None, 1000, {})
    assert fresh.history.count() == 1


def test_support_cannot_delete_access(support, pro_company):
    url = reverse("admin:entitlements_featureaccess_delete", args=[ai_access(pro_company).pk])
    assert support.post(url, {"post": "yes"}).status_code == 403


def test_access_list_filters(support, pro_company, company, features):
    from django.utils import timezone

    FeatureAccess.objects.filter(feature__code="sso").update(valid_until=timezone.now())
    url = reverse("admin:entitlements_featureaccess_changelist")
    assert support.get(url).status_code == 200
    expired = support.get(url, {"expired": "yes"}).context["cl"].result_list
    assert [a.feature.code for a in expired] == ["sso"]
    by_source = support.get(url, {"source__exact": "subscription", "product": "chat"}).context["cl"].result_list
    assert len(by_source) == 6  # the pro tier of the demo catalog grants six features
    assert len(support.get(url, {"is_enabled__exact": "0"}).context["cl"].result_list) == 0
    assert len(support.get(url, {"feature__id__exact": str(features["sso"].pk)}).context["cl"].result_list) == 1


# --- company page inline -------------------------------------------------------------------------


def company_url(company):
    return reverse("admin:companies_company_change", args=[company.pk])


def inline_index(data, access):
    prefix = next(key[: -len("-id")] for key, value in data.items() if key.endswith("-id") and value == str(access.pk))
    return prefix


def test_inline_edit_on_the_company_page_needs_a_reason(billing_admin, pro_company):
    access = ai_access(pro_company)
    page = billing_admin.get(company_url(pro_company))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Latest feature access changes" in html
    data = form_data(html, "company_form")
    prefix = inline_index(data, access)
    data[f"{prefix}-quantity_limit"] = "2500"
    response = billing_admin.post(company_url(pro_company), data)
    assert response.status_code == 200  # the form comes back with an error
    assert ai_access(pro_company).quantity_limit is None
    data[f"{prefix}-reason"] = "Customer on a promotion"
    response = billing_admin.post(company_url(pro_company), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    access.refresh_from_db()
    assert access.effective_at(timezone.now()).quantity_limit == 2500
    record = access.history.latest()
    assert record.history_change_reason == "Customer on a promotion" and record.actor == "user:bea"


def test_inline_config_edit_replaces_keys(billing_admin, pro_company):
    seats = FeatureAccess.objects.get(company=pro_company, feature__code="team_seats")
    data = form_data(billing_admin.get(company_url(pro_company)).content.decode(), "company_form")
    prefix = inline_index(data, seats)
    data[f"{prefix}-config"] = '{"maxSeats": 75}'
    data[f"{prefix}-reason"] = "More seats"
    assert billing_admin.post(company_url(pro_company), data).status_code == 302
    seats.refresh_from_db()
    assert seats.effective_at(timezone.now()).config == {"maxSeats": 75}
    data = form_data(billing_admin.get(company_url(pro_company)).content.decode(), "company_form")
    data[f"{prefix}-config"] = "{}"
    data[f"{prefix}-reason"] = "Back to default"
    assert billing_admin.post(company_url(pro_company), data).status_code == 302
    seats.refresh_from_db()
    # The override's keys are gone: the tier's config shows again.
    assert seats.overrides.get("config") == {} and seats.effective_at(timezone.now()).config == seats.config


# --- Apply tier… -------------------------------------------------------------------------------


def apply_tier_post(client, company, **extra):
    data = {"action": "entitlements_apply_tier", "_selected_action": [str(company.pk)], **extra}
    return client.post(reverse("admin:companies_company_changelist"), data)


def test_apply_tier_action(billing_admin, company, tiers):
    support = billing_admin  # tier changes are Billing admin's (SPEC §9)
    page = apply_tier_post(support, company)
    assert page.status_code == 200
    assert b"Apply a tier" in page.content and company.name.encode() in page.content
    response = apply_tier_post(
        support,
        company,
        apply="yes",
        tier=str(tiers["pro"].pk),
        overrides='{"ai_credit": {"quantityLimit": 3000}}',
        reason="Upgrade agreed on the phone",
    )
    assert response.status_code == 302
    access = ai_access(company)
    assert (access.tier, access.quantity_limit, access.source) == (tiers["pro"], 3000, "subscription")
    assert access.history.latest().history_change_reason == "Upgrade agreed on the phone"
    assert access.history.latest().history_user == support.user
    history = support.get(reverse("admin:entitlements_featureaccess_company_history", args=[company.pk]))
    assert b"Upgrade agreed on the phone" in history.content


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"reason": ""}, b"This field is required"),
        ({"overrides": "{oops", "reason": "x"}, b"Enter a valid JSON"),
        ({"overrides": '{"nope": {}}', "reason": "x"}, b"Unknown feature"),
        ({"overrides": '{"ai_credit": {"quantityLimit": -5}}', "reason": "x"}, b"features.ai_credit.quantityLimit"),
        ({"overrides": '{"ai_credit": {"maxQuantity": 5}}', "reason": "x"}, b"unknown field"),
    ],
)
def test_apply_tier_form_errors(billing_admin, company, tiers, extra, message):
    response = apply_tier_post(billing_admin, company, apply="yes", tier=str(tiers["pro"].pk), **extra)
    assert response.status_code == 200
    assert message in response.content
    assert not FeatureAccess.objects.exists()


def test_apply_tier_refuses_a_company_not_linked_to_the_product(billing_admin, other_company, tiers):
    response = apply_tier_post(billing_admin, other_company, apply="yes", tier=str(tiers["pro"].pk), reason="x")
    assert response.status_code == 200 and b"Not linked to Chat App" in response.content
    assert not FeatureAccess.objects.exists()


# --- admin writes invalidate the feature-check cache ---------------------------------------------


def test_admin_edits_are_seen_by_the_api_at_once(api, billing_admin, pro_company, tiers):
    check = f"/api/v1/companies/{pro_company.pk}/features/ai_credit"
    assert api.get(check).json()["quantityLimit"] is None  # cached now
    # The access row's own page.
    url = access_url(ai_access(pro_company))
    data = form_data(billing_admin.get(url).content.decode(), "featureaccess_form")
    data.update({"quantity_limit": "111", "reason": "page edit"})
    assert billing_admin.post(url, data).status_code == 302
    assert api.get(check).json()["quantityLimit"] == 111
    # The company page inline.
    data = form_data(billing_admin.get(company_url(pro_company)).content.decode(), "company_form")
    prefix = inline_index(data, ai_access(pro_company))
    data.update({f"{prefix}-quantity_limit": "222", f"{prefix}-reason": "inline edit"})
    assert billing_admin.post(company_url(pro_company), data).status_code == 302
    assert api.get(check).json()["quantityLimit"] == 222
    # The Apply tier… action.
    response = apply_tier_post(
        billing_admin, pro_company, apply="yes", tier=str(tiers["starter"].pk), reason="downgrade",
        overrides='{"ai_credit": {"quantityLimit": 333}}',
    )
    assert response.status_code == 302
    body = api.get(check).json()
    # The per-company value is the new tier layer; the inline edit's override stays in force over it.
    assert (body["quantityLimit"], body["tierCode"], body["source"]) == (222, "starter", "manual")
    remove = api.delete(f"{check}/override", {"reason": "back to the tier"}, format="json")
    assert remove.status_code == 200 and remove.json()["quantityLimit"] == 333
    # A feature edited in the admin.
    feature = ai_access(pro_company).feature
    url = reverse("admin:entitlements_feature_change", args=[feature.pk])
    data = form_data(billing_admin.get(url).content.decode(), "feature_form")
    data["name"] = "AI credits (v2)"
    assert billing_admin.post(url, data).status_code == 302
    assert api.get(check).json()["featureName"] == "AI credits (v2)"


# --- query counts (issue 9, item 11) -------------------------------------------------------------


def test_access_history_reads_the_previous_versions_of_all_rows_at_once(
    support, company, tiers, django_assert_max_num_queries
):
    """The company's history page and the company page's history panel pair
    each change with the version before it: two queries for every row shown,
    not one per access row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    history_url = reverse("admin:entitlements_featureaccess_company_history", args=[company.pk])
    company_url = reverse("admin:companies_company_change", args=[company.pk])
    for code in ("starter", "pro"):  # a few rows, some with an earlier version
        tier_apply(company=company, tier=tiers[code], actor=Actor.system("tests"))
    support.get(company_url)  # warm Django's own caches (content types)
    with CaptureQueriesContext(connection) as history_few:
        assert support.get(history_url).status_code == 200
    with CaptureQueriesContext(connection) as company_few:
        assert support.get(company_url).status_code == 200
    for code in ("enterprise", "starter", "pro", "enterprise"):  # more rows, each with more versions
        tier_apply(company=company, tier=tiers[code], actor=Actor.system("tests"))

    with django_assert_max_num_queries(len(history_few)):
        response = support.get(history_url)
    assert response.status_code == 200 and len(response.context["records"]) > 10
    with django_assert_max_num_queries(len(company_few)):
        assert support.get(company_url).status_code == 200


def test_apply_tier_says_which_overrides_it_keeps_before_and_after(billing_admin, company, tiers):
    """featuresKept in the admin (SPEC §9): the form names the features whose
    override stays in force over any tier, and the result says it again."""
    from datetime import timedelta

    from entitlements.services import feature_access_set

    tier_apply(company=company, tier=tiers["free"], actor=Actor.system("tests"))
    until = timezone.now() + timedelta(days=3)
    feature_access_set(
        company=company, feature=tiers["free"].tier_features.get(feature__code="ai_credit").feature,
        changes={"quantity_limit": 500, "source": "promotion", "valid_until": until},
        actor=Actor.system("tests"), reason="launch week",
    )
    url = reverse("admin:companies_company_action", args=[company.pk, "entitlements_apply_tier"])
    form = billing_admin.get(url).content.decode()
    assert f"ai_credit (promotion override until {until:%d %b %Y %H:%M} UTC)" in form
    done = billing_admin.post(url, {"apply": "yes", "tier": str(tiers["pro"].pk), "reason": "upgrade"}, follow=True)
    assert "kept because of an override: ai_credit (promotion override until" in done.content.decode()
    assert ai_access(company).effective_at(timezone.now()).quantity_limit == 500
