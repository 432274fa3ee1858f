"""The feature-check cache: it is used, and every write path invalidates it."""

import io
import json

import pytest
from django.core.cache import cache
from django.core.management import call_command

from companies.models import ProductLink
from entitlements import cache as check_cache
from companies.actors import Actor
from entitlements.cache import invalidate_company_checks, invalidate_feature_check
from entitlements.models import Feature, FeatureAccess
from entitlements.selectors import feature_access_check
from entitlements.services import feature_access_set, tier_apply
from tests.entitlements.conftest import DEMO_CATALOG

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")


def check_url(company, code):
    return f"/api/v1/companies/{company.pk}/features/{code}"


def test_check_is_served_from_the_cache(api, company, features, django_assert_num_queries):
    FeatureAccess.objects.create(company=company, feature=features["sso"], is_enabled=True)
    api.get(check_url(company, "sso"))  # warms key lookup, catalog, visibility, access
    with django_assert_num_queries(0):
        assert api.get(check_url(company, "sso")).json()["canUse"] is True


def test_direct_update_stays_cached_until_invalidated(api, company, features):
    FeatureAccess.objects.create(company=company, feature=features["sso"], is_enabled=True)
    assert api.get(check_url(company, "sso")).json()["isEnabled"] is True
    # A queryset update sends no signals: the cache still answers the old value ...
    FeatureAccess.objects.filter(company=company).update(is_enabled=False)
    assert api.get(check_url(company, "sso")).json()["isEnabled"] is True
    # ... until the public invalidation (what other apps call) runs.
    invalidate_feature_check(company_id=company.pk, feature_id=features["sso"].pk)
    assert api.get(check_url(company, "sso")).json()["isEnabled"] is False
    FeatureAccess.objects.filter(company=company).update(is_enabled=True)
    invalidate_company_checks(company_id=company.pk)
    assert api.get(check_url(company, "sso")).json()["isEnabled"] is True


def test_api_patch_invalidates(api, company, features):
    assert api.get(check_url(company, "ai_credit")).json()["quantityLimit"] is None
    api.patch(check_url(company, "ai_credit"), {"quantityLimit": 42}, format="json")
    assert api.get(check_url(company, "ai_credit")).json()["quantityLimit"] == 42
    api.patch("/api/v1/orgs/org_acme/features/ai_credit", {"quantityLimit": 43}, format="json")
    assert api.get(check_url(company, "ai_credit")).json()["quantityLimit"] == 43
    assert api.get("/api/v1/orgs/org_acme/features/ai_credit").json()["quantityLimit"] == 43


def test_service_write_invalidates(api, company, features):
    assert api.get(check_url(company, "sso")).json()["isEnabled"] is False
    feature_access_set(company=company, feature=features["sso"], changes={"is_enabled": True}, actor=SYSTEM)
    assert api.get(check_url(company, "sso")).json()["isEnabled"] is True


def test_tier_apply_invalidates(api, company, tiers):
    api.post("/api/v1/tiers/enterprise/apply", {"companyId": str(company.pk)}, format="json")
    assert api.get(check_url(company, "sso")).json()["tierCode"] == "enterprise"
    tier_apply(company=company, tier=tiers["starter"], actor=SYSTEM)
    sso = api.get(check_url(company, "sso")).json()
    assert sso["isEnabled"] is False
    assert api.get(check_url(company, "ai_credit")).json()["tierCode"] == "starter"


def test_catalog_load_invalidates(api, company, tmp_path, catalog):
    assert api.get(check_url(company, "team_seats")).json()["configValues"] == {"maxSeats": 3}
    data = json.loads(DEMO_CATALOG.read_text())
    seats = next(f for f in data["features"] if f["code"] == "team_seats")
    seats["defaultConfig"] = {"maxSeats": 5}
    seats["name"] = "Seats"
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    call_command("load_catalog", str(path), stdout=io.StringIO())
    body = api.get(check_url(company, "team_seats")).json()
    assert body["configValues"] == {"maxSeats": 5} and body["featureName"] == "Seats"


def test_feature_edit_and_new_feature_invalidate(api, company, features, catalog):
    api.get(check_url(company, "sso"))
    feature = features["sso"]
    feature.name = "SAML SSO"
    feature.save()
    assert api.get(check_url(company, "sso")).json()["featureName"] == "SAML SSO"
    assert api.get(check_url(company, "audit_log")).status_code == 404
    Feature.objects.create(product=catalog, code="audit_log", name="Audit log")
    assert api.get(check_url(company, "audit_log")).status_code == 200


def test_tier_rename_invalidates_tier_code(api, company, tiers):
    tier_apply(company=company, tier=tiers["pro"], actor=SYSTEM)
    assert api.get(check_url(company, "sso")).json()["tierCode"] == "pro"
    tiers["pro"].code = "professional"
    tiers["pro"].save()
    assert api.get(check_url(company, "sso")).json()["tierCode"] == "professional"


def test_unlinking_hides_the_company_at_once(api, company, catalog):
    assert api.get(check_url(company, "sso")).status_code == 200
    assert api.get("/api/v1/orgs/org_acme/features/sso").status_code == 200
    ProductLink.objects.filter(company=company).delete()
    assert api.get(check_url(company, "sso")).status_code == 404
    assert api.get("/api/v1/orgs/org_acme/features/sso").status_code == 404


def test_relinking_an_org_id_to_another_company_follows(api, company, catalog):
    from tests.factories.companies import CompanyFactory

    api.get("/api/v1/orgs/org_acme/features/sso")
    other = CompanyFactory()
    link = ProductLink.objects.get(external_org_id="org_acme")
    link.company = other
    link.save()
    assert api.get("/api/v1/orgs/org_acme/features").json()["companyId"] == str(other.pk)
    assert api.get(check_url(company, "sso")).status_code == 404


def test_invalidation_runs_again_on_commit(company, features, django_capture_on_commit_callbacks):
    feature = features["sso"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        feature_access_set(company=company, feature=feature, changes={"is_enabled": True}, actor=SYSTEM)
    assert callbacks, "an on-commit invalidation is scheduled"
    # A reader that cached the pre-commit state is corrected when the writer commits.
    key = check_cache.access_key(feature.product_id, company.pk, "sso")
    cache.set(key, {"stale": True})
    for callback in callbacks:
        callback()
    assert cache.get(key) is None


def test_reader_racing_an_invalidation_does_not_keep_stale_data(company, features):
    """The stale-set race: a reader loads the old row, the writer commits and
    invalidates, then the reader stores what it loaded. The token check makes
    the reader drop its value."""
    feature = features["sso"]
    key = check_cache.access_key(feature.product_id, company.pk, "sso")

    def loader_that_races():
        stale = {"feature_id": feature.pk, "is_enabled": False}
        check_cache.invalidate_access(product_id=feature.product_id, company_id=company.pk, feature_codes=["sso"])
        return stale

    values = check_cache.get_or_load({key: loader_that_races})
    assert values[key]["is_enabled"] is False  # the racing reader answers what it read ...
    assert cache.get(key) is None  # ... but does not leave it in the cache


def test_cache_outage_falls_back_to_the_database(company, features, catalog, monkeypatch):
    FeatureAccess.objects.create(company=company, feature=features["sso"], is_enabled=True)

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(check_cache.cache, "get_many", broken)
    assert feature_access_check(company=company, product_id=catalog.pk, feature_code="sso").can_use
