"""Access in layers (SPEC §4, issue 14): the tier layer and one override,
expiry falling back to the tier, featuresKept, inherit, DELETE …/override,
`source: subscription` refused, and Explain (rules in order, reasons)."""

from datetime import timedelta, timezone as dt_timezone

import pytest
from django.utils import timezone

from entitlements.models import FeatureAccess
from entitlements.services import access_windows_notify
from notifications.models import Event
from tests.factories.companies import CompanyFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db


def url(company, code, tail=""):
    return f"/api/v1/companies/{company.pk}/features/{code}{tail}"


def apply(api, company, tier, **body):
    response = api.post(f"/api/v1/tiers/{tier}/apply", {"companyId": str(company.pk), **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def patch(api, company, code, **body):
    return api.patch(url(company, code), body, format="json")


def test_a_temporary_bonus_falls_back_to_the_tier_when_it_ends(api, company, features):
    apply(api, company, "free")
    until = timezone.now() + timedelta(days=7)
    response = patch(api, company, "ai_credit", quantityLimit=500, source="promotion", validUntil=until.isoformat(), reason="Bonus")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["quantityLimit"], body["source"], body["includedQuantity"]) == (500, "promotion", 100)
    # A week later the promotion has ended: the tier's limit shows again, never "off".
    FeatureAccess.objects.filter(company=company).update(valid_until=timezone.now() - timedelta(seconds=1))
    from entitlements import cache

    cache.invalidate_company_checks(company_id=company.pk)
    body = api.get(url(company, "ai_credit")).json()
    assert (body["quantityLimit"], body["source"], body["isEnabled"], body["canUse"]) == (100, "subscription", True, True)
    assert body["tierCode"] == "free" and body["validUntil"] is None


def test_expire_overrides_emits_when_an_override_ends(api, company, features):
    apply(api, company, "free")
    patch(api, company, "sso", isEnabled=True, source="trial", validUntil=(timezone.now() + timedelta(days=1)).isoformat())
    Event.objects.all().delete()
    assert access_windows_notify(now=timezone.now() + timedelta(days=2)) == 1
    [event] = Event.objects.filter(type="feature_access.changed")
    assert event.data["change"] == "window_ended" and event.data["featureCode"] == "sso"


def test_tier_apply_reports_features_kept_and_rewrites_only_the_tier_layer(api, company, features):
    apply(api, company, "free")
    until = timezone.now() + timedelta(days=14)
    patch(api, company, "sso", isEnabled=True, source="trial", validUntil=until.isoformat(), reason="Trial")
    patch(api, company, "ai_credit", quantityLimit=5000, reason="Goodwill")
    body = apply(api, company, "pro")
    assert body["featuresKept"] == [
        {"featureCode": "ai_credit", "source": "api", "validUntil": None},
        {"featureCode": "sso", "source": "trial", "validUntil": until.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")},
    ]
    assert "ai_credit" in body["featuresApplied"]
    check = api.get(url(company, "ai_credit")).json()
    assert (check["quantityLimit"], check["includedQuantity"], check["source"]) == (5000, 1000, "api")
    # Applying the same tier again changes nothing and still reports the overrides.
    history = FeatureAccess.history.count()
    again = apply(api, company, "pro")
    assert again["featuresKept"] == body["featuresKept"] and FeatureAccess.history.count() == history


def test_patch_merges_into_the_override_and_inherit_drops_fields(api, company, features):
    apply(api, company, "starter")
    patch(api, company, "team_seats", config={"maxSeats": 20, "beta": True})
    patch(api, company, "team_seats", config={"beta": None})
    body = api.get(url(company, "team_seats")).json()
    assert body["configValues"] == {"maxSeats": 20}
    patch(api, company, "ai_credit", quantityLimit=None, includedQuantity=800)
    body = api.get(url(company, "ai_credit")).json()
    assert (body["quantityLimit"], body["includedQuantity"]) == (None, 800)  # null = unlimited, set by the override
    body = patch(api, company, "ai_credit", inherit=["quantityLimit"]).json()
    assert (body["quantityLimit"], body["includedQuantity"], body["source"]) == (2000, 800, "api")
    body = patch(api, company, "ai_credit", inherit=["includedQuantity"]).json()
    # Nothing left to override: the override is gone, the tier layer shows.
    assert (body["quantityLimit"], body["includedQuantity"], body["source"]) == (2000, 500, "subscription")
    row = FeatureAccess.objects.get(company=company, feature__code="ai_credit")
    assert row.source == "subscription" and row.overrides == {}


def test_source_subscription_and_bad_inherit_are_refused(api, company, features):
    apply(api, company, "free")
    before = list(FeatureAccess.objects.order_by("pk").values())
    response = patch(api, company, "ai_credit", quantityLimit=5, source="subscription")
    assert response.status_code == 400 and "source" in response.json()["error"]["details"]["fields"]
    response = patch(api, company, "ai_credit", inherit=["tierCode"])
    assert response.status_code == 400 and "inherit" in str(response.json()["error"]["details"]["fields"])
    assert list(FeatureAccess.objects.order_by("pk").values()) == before


def test_delete_override_shows_the_tier_layer_again(api, company, features):
    apply(api, company, "free")
    patch(api, company, "ai_credit", quantityLimit=999)
    response = api.delete(url(company, "ai_credit", "/override"), {}, format="json")
    assert response.status_code == 400 and "reason" in response.json()["error"]["details"]["fields"]
    response = api.delete(url(company, "ai_credit", "/override"), {"reason": "Ticket closed"}, format="json")
    assert response.status_code == 200
    assert (response.json()["quantityLimit"], response.json()["source"]) == (100, "subscription")
    record = FeatureAccess.objects.get(company=company, feature__code="ai_credit").history.latest()
    assert record.history_change_reason == "Ticket closed"
    # Again: nothing to remove, same answer.
    again = api.delete(url(company, "ai_credit", "/override"), {"reason": "again"}, format="json")
    assert again.status_code == 200 and again.json()["quantityLimit"] == 100
    # An override over no tier layer: removing it removes the row.
    patch(api, company, "sso", isEnabled=True)
    api.delete(url(company, "sso", "/override"), {"reason": "Trial over"}, format="json")
    assert not FeatureAccess.objects.filter(company=company, feature__code="sso").exists()
    assert api.get(url(company, "sso")).json()["status"] == "not_granted"


def test_features_without_access_are_listed_as_not_granted(api, company, features):
    apply(api, company, "free")
    body = api.get(f"/api/v1/companies/{company.pk}/features?limit=100").json()
    by_code = {item["featureCode"]: item for item in body["data"]}
    assert set(by_code) == set(features)
    assert by_code["sso"]["status"] == "not_granted" and by_code["sso"]["canUse"] is False
    assert by_code["sso"]["reason"] == "Single sign-on is not included in the current plan."


def test_check_result_usage_fields_and_reason(api, company, features):
    apply(api, company, "free")
    for _ in range(2):
        assert api.post("/api/v1/usage/track", {"companyId": str(company.pk), "featureCode": "ai_credit", "quantity": 50}, format="json").status_code in (200, 201)
    body = api.get(url(company, "ai_credit")).json()
    assert (body["status"], body["canUse"], body["usagePercent"], body["resetPeriod"]) == ("limit_reached", False, 100, "monthly")
    reset_at = body["resetAt"]
    assert body["periodStart"] < reset_at
    day = int(reset_at[8:10])
    month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][int(reset_at[5:7]) - 1]
    assert body["reason"] == f"Usage 100 of 100 AI credits this month; resets on {day} {month}."


def test_explain_gives_layers_tier_usage_credits_and_rules_in_order(api, company, features):
    apply(api, company, "free", reason="Onboarding")
    patch(api, company, "ai_credit", quantityLimit=150, source="manual", reason="Goodwill #881")
    api.post("/api/v1/usage/track", {"companyId": str(company.pk), "featureCode": "ai_credit", "quantity": 7}, format="json")
    response = api.get(url(company, "ai_credit", "/explain"))
    assert response.status_code == 200, response.content
    body = response.json()
    check = api.get(url(company, "ai_credit")).json()
    assert {key: body[key] for key in check} == check  # the same decision as the check
    assert [layer["source"] for layer in body["layers"]] == ["subscription", "manual"]
    tier_layer, override = body["layers"]
    assert tier_layer["fields"]["quantityLimit"] == 100 and tier_layer["inForce"]
    assert override["fields"] == {"quantityLimit": 150} and override["inForce"]
    assert override["reason"] == "Goodwill #881" and override["setBy"].startswith("api_key:")
    assert body["tier"]["code"] == "free" and "Onboarding" in body["tier"]["via"]
    assert body["usage"]["currentUsage"] == 7 and body["usage"]["quantityLimit"] == 150
    assert body["usage"]["lastEventAt"] is not None
    assert body["credits"] == {"available": None, "creditCost": None}
    assert [rule["rule"] for rule in body["rules"]] == [
        "account_not_suspended",
        "access_granted",
        "enabled",
        "within_limit",
        "credits_for_one_unit",
    ]
    assert all(rule["passed"] for rule in body["rules"])
    # By external org id: the same answer.
    assert api.get(f"/api/v1/orgs/org_acme/features/ai_credit/explain").json() == body


def test_explain_of_a_credit_priced_feature_without_credits(api, company, features):
    apply(api, company, "starter")
    body = api.get(url(company, "ai_image", "/explain")).json()
    assert body["status"] == "no_credits" and body["canUse"] is False
    assert body["credits"] == {"available": 0, "creditCost": 5}
    failed = [rule["rule"] for rule in body["rules"] if not rule["passed"]]
    assert failed == ["credits_for_one_unit"]
    assert body["reason"] == "Not enough credits: one unit of AI images costs 5 credits, 0 available."


def test_explain_is_404_for_companies_of_other_products(api, other_api, company, features):
    assert other_api.get(url(company, "ai_credit", "/explain")).status_code == 404
    stranger = CompanyFactory()
    assert api.get(url(stranger, "ai_credit", "/explain")).status_code == 404


def test_check_query_count_is_unchanged_by_layers(api, company, features, django_assert_num_queries):
    """Warm cache: a check of a metered feature reads usage only (one query);
    layers and suspension come from the same cache round trip."""
    apply(api, company, "free")
    api.get(url(company, "ai_credit"))
    from metering.selectors import feature_check

    product_id = features["ai_credit"].product_id
    with django_assert_num_queries(1):
        feature_check(product_id=product_id, company_id=company.pk, feature_code="ai_credit")
