"""Suspend / reactivate an account (SPEC §3, issue 14 item 3): every check
`canUse: false` `status: suspended`, tracks 412 `details.status: suspended`,
debits and holds 423 `details.reason: company_suspended` (settle still
allowed), nothing deleted, `company.status_changed`, and reactivate undoes it."""

import pytest

from companies.models import Account
from config.errors import BadRequest, Conflict, Locked
from credits.services import credits_grant
from credits.services.debits import credits_debit
from credits.services.reservations import reservation_create, reservation_settle
from desk.services import account_reactivate, account_suspend
from entitlements.models import FeatureAccess
from notifications.models import Event
from tests.factories.companies import CompanyFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def company(product):
    company = CompanyFactory(name="Massive Dynamic", short_id="massive")
    ProductLinkFactory(product=product, company=company, external_org_id="org_massive")
    return company


@pytest.fixture
def catalog(product):
    import io

    from django.core.management import call_command

    from tests.entitlements.conftest import DEMO_CATALOG

    call_command("load_catalog", str(DEMO_CATALOG), stdout=io.StringIO())
    return product


def test_suspend_blocks_checks_tracks_debits_and_holds(api, product, company, catalog):
    assert api.post("/api/v1/tiers/free/apply", {"companyId": str(company.pk)}, format="json").status_code == 200
    credits_grant(company_id=company.pk, product_id=product.pk, amount=50, bucket="promotional", reason="t", actor="user:t")
    hold = reservation_create(product_id=product.pk, company_id=company.pk, run_id="run-1", amount=10, ttl_seconds=600)
    rows_before = FeatureAccess.objects.filter(company=company).count()

    with pytest.raises(BadRequest):
        account_suspend(company=company, product_id=product.pk, reason=" ")
    change = account_suspend(company=company, product_id=product.pk, reason="Chargeback fraud", actor="user:bea")
    assert (change.previous_status, change.status, change.changed) == ("prospect", "suspended", True)
    [event] = Event.objects.filter(type="company.status_changed")
    assert event.data["status"] == "suspended" and event.data["reason"] == "Chargeback fraud" and event.data["cause"] == "staff_suspend"

    body = api.get(f"/api/v1/companies/{company.pk}/features/ai_credit").json()
    assert (body["canUse"], body["status"]) == (False, "suspended")
    assert "suspended" in body["reason"]
    listed = api.get(f"/api/v1/companies/{company.pk}/features?limit=100").json()["data"]
    assert {item["status"] for item in listed} == {"suspended"}
    explain = api.get(f"/api/v1/companies/{company.pk}/features/ai_credit/explain").json()
    assert explain["rules"][0] == {"rule": "account_not_suspended", "passed": False, "detail": "The account is suspended."}

    response = api.post("/api/v1/usage/track", {"companyId": str(company.pk), "featureCode": "ai_credit"}, format="json")
    assert response.status_code == 412 and response.json()["error"]["details"]["status"] == "suspended"

    with pytest.raises(Locked) as refused:
        credits_debit(product_id=product.pk, company_id=company.pk, amount=1, job_id="j1", source_service="ai")
    assert refused.value.details["reason"] == "company_suspended"
    with pytest.raises(Locked):
        reservation_create(product_id=product.pk, company_id=company.pk, run_id="run-2", amount=1, ttl_seconds=60)
    # Work already done is still charged.
    settled = reservation_settle(product_id=product.pk, reservation_id=hold.reservation.id, amount=4)
    assert settled is not None
    # Nothing deleted.
    assert FeatureAccess.objects.filter(company=company).count() == rows_before
    # Suspending again changes nothing.
    assert account_suspend(company=company, product_id=product.pk, reason="again").changed is False

    change = account_reactivate(company=company, product_id=product.pk, reason="Chargeback won", actor="user:bea")
    assert (change.previous_status, change.status) == ("suspended", "prospect")
    assert Account.objects.get(company=company, product=product).suspension_reason == ""
    body = api.get(f"/api/v1/companies/{company.pk}/features/ai_credit").json()
    assert (body["canUse"], body["status"]) == (True, "active")
    assert credits_debit(product_id=product.pk, company_id=company.pk, amount=1, job_id="j1", source_service="ai").entry
    with pytest.raises(Conflict):
        account_reactivate(company=company, product_id=product.pk, reason="twice")
    assert Event.objects.filter(type="company.status_changed").count() == 2


def test_suspension_is_per_product(api, other_api, product, other_product, company, catalog):
    ProductLinkFactory(product=other_product, company=company, external_org_id="org_massive_other")
    account_suspend(company=company, product_id=other_product.pk, reason="Other product only")
    assert Account.objects.get(company=company, product=product).status != "suspended"
    body = api.get(f"/api/v1/companies/{company.pk}/features/sso").json()
    assert body["status"] == "not_granted"
