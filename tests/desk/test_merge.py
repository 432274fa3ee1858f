"""Merging a duplicate company into the one that stays (SPEC §3 "Merge",
issue 14 item 3): every app's part, the API, the tombstone, idempotency,
refusals and isolation."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.models import BillingProfile, Invoice, Subscription
from companies.actors import Actor
from companies.models import Account, Company, Contact, LinkType, ProductLink
from config.errors import BadRequest, Conflict, NotFound
from credits.models import EntryKind, LedgerEntry, Wallet
from credits.services import credits_grant
from credits.services.reservations import reservation_create
from desk.models import CompanyMerge
from desk.services import company_merge, company_merge_preview
from entitlements.models import AccessSource, Feature, FeatureAccess
from entitlements.services import feature_access_set
from insights.models import AccountStatusChange, RevenueSnapshot
from metering.models import UsageDailyRollup, UsageEvent, UsageMeter
from notifications.models import Event
from tests.factories.billing import BillingProfileFactory, SubscriptionFactory
from tests.factories.companies import CompanyFactory, ContactFactory, ProductFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db

STAFF = Actor.system("tests")


@pytest.fixture
def catalog(product):
    from tests.entitlements.conftest import DEMO_CATALOG

    call_command("load_catalog", str(DEMO_CATALOG), stdout=io.StringIO())
    return product


@pytest.fixture
def kept(product):
    company = CompanyFactory(name="Acme Inc", short_id="acme", domain="acme.com", country="")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    return company


@pytest.fixture
def duplicate(product):
    company = CompanyFactory(name="ACME", short_id="acme-2", domain="", country="DE")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme_dup")
    return company


def _merge(api, source, target, reason="Duplicate from the CRM import"):
    return api.post(
        f"/api/v1/companies/{source.pk}/merge", {"intoCompanyId": str(target.pk), "reason": reason}, format="json"
    )


def _free_tier(api, *companies):
    for company in companies:
        assert api.post("/api/v1/tiers/free/apply", {"companyId": str(company.pk)}, format="json").status_code == 200


def _track(api, company=None, *, org=None, feature="ai_credit", quantity=1):
    body = {"featureCode": feature, "quantity": quantity}
    body.update({"externalOrgId": org} if org else {"companyId": str(company.pk)})
    return api.post("/api/v1/usage/track", body, format="json")


def _books(product):
    """Every wallet's balance of the product and the sum of all ledger amounts."""
    wallets = Wallet.objects.filter(product=product)
    balance = sum(w.balance_subscription + w.balance_promotional + w.balance_topup - w.debt for w in wallets)
    ledger = sum(LedgerEntry.objects.filter(product=product).values_list("amount", flat=True))
    return balance, ledger


# --- the whole merge through the API --------------------------------------------------


def test_merge_moves_every_app_and_leaves_a_tombstone(api, product, catalog, kept, duplicate):
    tiers_apply = [api.post("/api/v1/tiers/free/apply", {"companyId": str(c.pk)}, format="json") for c in (kept, duplicate)]
    assert [r.status_code for r in tiers_apply] == [200, 200]
    # contacts: one shared email (the kept primary wins), one new, the duplicate's primary
    ContactFactory(company=kept, email="ceo@acme.com", name="", is_primary=True)
    ContactFactory(company=duplicate, email="ceo@acme.com", name="Carla CEO", is_primary=False)
    ContactFactory(company=duplicate, email="ops@acme.com", is_primary=True)
    # an override the kept company lacks, one it has (its own wins)
    sso = Feature.objects.get(product=product, code="sso")
    seats = Feature.objects.get(product=product, code="team_seats")
    feature_access_set(company=duplicate, feature=sso, actor=STAFF, changes={"is_enabled": True, "source": "trial"}, reason="trial")
    feature_access_set(company=duplicate, feature=seats, actor=STAFF, changes={"config": {"maxSeats": 50}}, reason="deal")
    feature_access_set(company=kept, feature=seats, actor=STAFF, changes={"config": {"maxSeats": 10}}, reason="kept deal")
    # usage in the same period on both sides
    assert _track(api, kept, quantity=3).status_code == 200
    assert _track(api, duplicate, quantity=4).status_code == 200
    assert _track(api, duplicate, feature="messages", quantity=2).status_code == 200
    # credits on both sides
    credits_grant(company_id=kept.pk, product_id=product.pk, amount=10, bucket="promotional", reason="t", actor="user:t")
    expires = timezone.now() + timedelta(days=20)
    credits_grant(
        company_id=duplicate.pk, product_id=product.pk, amount=25, bucket="promotional", reason="t", actor="user:t",
        expires_at=expires,
    )
    # billing only on the duplicate's side
    BillingProfileFactory(company=duplicate, product=product, stripe_customer_id="cus_dup")
    SubscriptionFactory(company=duplicate, product=product, stripe_customer_id="cus_dup", tier=None)
    books_before = _books(product)

    response = _merge(api, duplicate, kept)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body == {
        "keptCompanyId": str(kept.pk),
        "moved": {
            "contacts": 2, "links": 1, "overrides": 1, "meters": 2, "events": 2, "wallets": 1, "subscriptions": 1,
        },
    }
    # contacts: deduplicated by email, the kept primary stays the only primary
    contacts = {c.email: c for c in Contact.objects.filter(company=kept)}
    assert set(contacts) == {"ceo@acme.com", "ops@acme.com"}
    assert contacts["ceo@acme.com"].is_primary and contacts["ceo@acme.com"].name == "Carla CEO"
    assert not contacts["ops@acme.com"].is_primary
    assert not Contact.objects.filter(company=duplicate).exists()
    # links: the duplicate's external id answers the kept company, as linkType merged
    link = ProductLink.objects.get(external_org_id="org_acme_dup")
    assert (link.company_id, link.link_type) == (kept.pk, LinkType.MERGED)
    by_link = api.get("/api/v1/companies/by-product-link", {"externalOrgId": "org_acme_dup"}).json()
    assert by_link["id"] == str(kept.pk) and by_link["linkType"] == "merged"
    # access: the override the kept company lacked came over, its own stayed
    assert FeatureAccess.objects.get(company=kept, feature=sso).source == AccessSource.TRIAL
    check = api.get(f"/api/v1/companies/{kept.pk}/features/team_seats").json()
    assert check["configValues"]["maxSeats"] == 10
    assert not FeatureAccess.objects.filter(company=duplicate).exists()
    # usage: meters summed per period, events re-pointed, rollups summed
    meter = UsageMeter.objects.get(company=kept, feature__code="ai_credit")
    assert meter.value == 7
    assert UsageEvent.objects.filter(company=kept).count() == 3
    assert not UsageEvent.objects.filter(company=duplicate).exists()
    assert sum(UsageDailyRollup.objects.filter(company=kept, feature__code="ai_credit").values_list("quantity", flat=True)) == 7
    assert api.get(f"/api/v1/companies/{kept.pk}/features/ai_credit").json()["currentUsage"] == 7
    # credits: a transfer pair, lots keep their expiry, books balance
    wallet = Wallet.objects.get(company=kept, product=product)
    assert wallet.balance_promotional == 35
    transfers = LedgerEntry.objects.filter(kind=EntryKind.TRANSFER).order_by("amount")
    assert [t.amount for t in transfers] == [-25, 25]
    assert wallet.lots.filter(expires_at=expires, remaining=25).exists()
    assert _books(product) == books_before
    # billing
    assert BillingProfile.objects.get(stripe_customer_id="cus_dup").company_id == kept.pk
    assert Subscription.objects.get(stripe_customer_id="cus_dup").company_id == kept.pk
    # accounts combined, the duplicate is a tombstone with its profile fields kept where the kept lacked them
    assert Account.objects.filter(company=kept).count() == 1 and not Account.objects.filter(company=duplicate).exists()
    duplicate.refresh_from_db()
    kept.refresh_from_db()
    assert duplicate.merged_into_id == kept.pk and kept.country == "DE"
    # the record and the notification
    record = CompanyMerge.objects.get(source=duplicate)
    assert record.target_id == kept.pk and record.reason == "Duplicate from the CRM import"
    assert record.moved["detail"]["contactsDeduplicated"] == 1 and record.moved["detail"]["credits"] == 25
    [event] = Event.objects.filter(type="company.merged")
    assert event.data["companyId"] == str(duplicate.pk) and event.data["keptCompanyId"] == str(kept.pk)


def test_tombstone_reads_answer_the_kept_company_and_writes_are_409(api, product, catalog, kept, duplicate):
    _free_tier(api, kept, duplicate)
    assert _merge(api, duplicate, kept).status_code == 200

    read = api.get(f"/api/v1/companies/{duplicate.pk}")
    assert read.status_code == 200 and read.json()["id"] == str(kept.pk)
    assert api.get(f"/api/v1/companies/{duplicate.pk}/contacts").status_code == 200

    write = api.patch(f"/api/v1/companies/{duplicate.pk}", {"name": "Renamed"}, format="json")
    assert write.status_code == 409
    assert write.json()["error"]["details"]["keptCompanyId"] == str(kept.pk)
    assert write.json()["error"]["details"]["reason"] == "company_merged"
    track = _track(api, duplicate)
    assert track.status_code == 409 and track.json()["error"]["details"]["keptCompanyId"] == str(kept.pk)
    contact = api.post("/api/v1/contacts", {"companyId": str(duplicate.pk), "email": "x@acme.com"}, format="json")
    assert contact.status_code == 409
    # a batch item naming the tombstone is the same 409, an unknown id stays 404
    batch = api.post("/api/v1/usage/track-batch", {"events": [
        {"companyId": str(duplicate.pk), "featureCode": "ai_credit"},
        {"companyId": "0b9a1f2e-1111-2222-3333-444455556666", "featureCode": "ai_credit"},
    ]}, format="json")
    first, second = batch.json()["results"]
    assert first["status"] == "error" and first["error"]["httpStatus"] == 409
    assert first["error"]["details"]["keptCompanyId"] == str(kept.pk)
    assert second["status"] == "error" and second["error"]["httpStatus"] == 404
    # by the old external id, usage lands on the kept company
    assert _track(api, org="org_acme_dup").status_code == 200
    assert UsageMeter.objects.get(company=kept, feature__code="ai_credit").value == 1
    # the tombstone is out of the list
    listed = api.get("/api/v1/companies").json()["data"]
    assert [c["id"] for c in listed] == [str(kept.pk)]
    Company.objects.get(pk=duplicate.pk)  # still there


def test_merging_again_answers_the_same_and_changes_nothing(api, product, catalog, kept, duplicate):
    ContactFactory(company=duplicate, email="a@acme.com")
    first = _merge(api, duplicate, kept)
    events = Event.objects.count()
    again = _merge(api, duplicate, kept, reason="another reason")
    assert again.status_code == 200 and again.json() == first.json()
    assert CompanyMerge.objects.count() == 1 and Event.objects.count() == events
    # into another company: the duplicate is gone already
    third = CompanyFactory(name="Third")
    ProductLinkFactory(product=product, company=third, external_org_id="org_third")
    other = _merge(api, duplicate, third)
    assert other.status_code == 409 and other.json()["error"]["details"]["keptCompanyId"] == str(kept.pk)


def test_refusals(api, product, catalog, kept, duplicate):
    same = _merge(api, kept, kept)
    assert same.status_code == 400 and "intoCompanyId" in same.json()["error"]["details"]["fields"]
    no_reason = _merge(api, duplicate, kept, reason="")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]["details"]["fields"]
    unknown = api.post(f"/api/v1/companies/{duplicate.pk}/merge", {"intoCompanyId": "nope", "reason": "x"}, format="json")
    assert unknown.status_code == 400
    extra = api.post(
        f"/api/v1/companies/{duplicate.pk}/merge", {"intoCompanyId": str(kept.pk), "reason": "x", "x": 1}, format="json"
    )
    assert extra.status_code == 400
    # into a tombstone
    third = CompanyFactory(name="Third")
    ProductLinkFactory(product=product, company=third, external_org_id="org_third")
    assert _merge(api, duplicate, kept).status_code == 200
    into_tombstone = _merge(api, third, duplicate)
    assert into_tombstone.status_code == 409
    assert into_tombstone.json()["error"]["details"]["keptCompanyId"] == str(kept.pk)


def test_both_stripe_customers_of_one_product_is_409_and_nothing_moves(api, product, catalog, kept, duplicate):
    BillingProfileFactory(company=kept, product=product, stripe_customer_id="cus_kept")
    BillingProfileFactory(company=duplicate, product=product, stripe_customer_id="cus_dup")
    ContactFactory(company=duplicate, email="a@acme.com")
    response = _merge(api, duplicate, kept)
    assert response.status_code == 409
    assert response.json()["error"]["details"]["reason"] == "merge_both_stripe_customers"
    assert Contact.objects.filter(company=duplicate).count() == 1
    assert ProductLink.objects.get(external_org_id="org_acme_dup").company_id == duplicate.pk
    assert not Company.objects.get(pk=duplicate.pk).merged_into_id and not CompanyMerge.objects.exists()


def test_active_reservation_of_the_duplicate_is_409(api, product, catalog, kept, duplicate):
    credits_grant(company_id=duplicate.pk, product_id=product.pk, amount=50, bucket="promotional", reason="t", actor="user:t")
    reservation_create(product_id=product.pk, company_id=duplicate.pk, run_id="run-1", amount=10, ttl_seconds=600)
    assert _merge(api, duplicate, kept).status_code == 409
    assert Wallet.objects.get(company=duplicate).balance_promotional == 50


def test_companies_another_product_cannot_see_are_404(api, other_api, product, other_product, catalog, kept, duplicate):
    # other_product sees the kept company only
    ProductLinkFactory(product=other_product, company=kept, external_org_id="crm_acme")
    assert _merge(other_api, duplicate, kept).status_code == 404
    assert _merge(other_api, kept, duplicate).status_code == 404
    assert not CompanyMerge.objects.exists()
    # and a company of another pool entirely
    stranger = CompanyFactory(name="Stranger")
    ProductLinkFactory(product=other_product, company=stranger, external_org_id="crm_stranger")
    assert _merge(api, stranger, kept).status_code == 404
    # after the merge, another product that never saw the duplicate learns nothing from its id
    assert _merge(api, duplicate, kept).status_code == 200
    lone = ProductFactory(code="lone")
    from tests.conftest import _client_for

    assert _client_for(lone).get(f"/api/v1/companies/{duplicate.pk}").status_code == 404


def test_preview_counts_what_the_merge_moves_and_changes_nothing(api, product, catalog, kept, duplicate):
    ContactFactory(company=duplicate, email="a@acme.com")
    _free_tier(api, kept, duplicate)
    assert _track(api, duplicate, quantity=5).status_code == 200
    preview = company_merge_preview(source=duplicate, target=kept, actor=STAFF)
    assert preview.moved["contacts"] == 1 and preview.moved["events"] == 1 and preview.moved["links"] == 1
    assert not Company.objects.get(pk=duplicate.pk).merged_into_id
    assert UsageMeter.objects.get(company=duplicate).value == 5
    assert not Event.objects.filter(type="company.merged").exists()
    result = company_merge(source=duplicate, target=kept, reason="dupe", actor=STAFF)
    assert result.moved == preview.moved


def test_service_refuses_blank_reason_and_self(product, kept, duplicate):
    with pytest.raises(BadRequest):
        company_merge(source=duplicate, target=kept, reason=" ", actor=STAFF)
    with pytest.raises(BadRequest):
        company_merge(source=kept, target=kept, reason="x", actor=STAFF)
    with pytest.raises(NotFound):
        company_merge(source=duplicate, target=kept, reason="x", actor=STAFF, product_id=ProductFactory(code="z").pk)


# --- each app's part -------------------------------------------------------------------


def test_contacts_the_duplicates_primary_wins_only_when_the_kept_has_none(product, kept, duplicate):
    ContactFactory(company=kept, email="a@acme.com", is_primary=False)
    ContactFactory(company=duplicate, email="b@acme.com", is_primary=True)
    company_merge(source=duplicate, target=kept, reason="x", actor=STAFF)
    assert list(Contact.objects.filter(company=kept, is_primary=True).values_list("email", flat=True)) == ["b@acme.com"]


def test_entitlements_expired_overrides_do_not_move(product, catalog, kept, duplicate):
    sso = Feature.objects.get(product=product, code="sso")
    feature_access_set(
        company=duplicate, feature=sso, actor=STAFF, reason="old trial",
        changes={
            "is_enabled": True, "source": "trial",
            "valid_from": timezone.now() - timedelta(days=10), "valid_until": timezone.now() - timedelta(days=1),
        },
    )
    result = company_merge(source=duplicate, target=kept, reason="x", actor=STAFF)
    assert result.moved["overrides"] == 0
    assert not FeatureAccess.objects.filter(company=kept, feature=sso, source=AccessSource.TRIAL).exists()


def test_metering_meters_of_other_periods_move_as_they_are(api, product, catalog, kept, duplicate):
    from tests.factories.metering import UsageMeterFactory

    _free_tier(api, kept, duplicate)
    ai_credit = Feature.objects.get(product=product, code="ai_credit")
    UsageMeterFactory(company=duplicate, feature=ai_credit, value=2, period_start=timezone.now() - timedelta(days=400))
    assert _track(api, kept, quantity=1).status_code == 200
    company_merge(source=duplicate, target=kept, reason="x", actor=STAFF)
    assert sorted(UsageMeter.objects.filter(company=kept).values_list("value", flat=True)) == [1, 2]


def test_insights_history_follows_and_revenue_per_day_is_kept(product, kept, duplicate):
    from insights.services.lifecycle import account_status_change

    duplicate_account = Account.objects.get(company=duplicate)
    kept_account = Account.objects.get(company=kept)
    account_status_change(account_id=duplicate_account.pk, to_status="active", cause="test")
    today = timezone.now().date()
    RevenueSnapshot.objects.create(account=kept_account, company=kept, product=product, day=today, mrr=100, currency="usd")
    RevenueSnapshot.objects.create(
        account=duplicate_account, company=duplicate, product=product, day=today, mrr=50, currency="usd"
    )
    RevenueSnapshot.objects.create(
        account=duplicate_account, company=duplicate, product=product, day=today - timedelta(days=1), mrr=50,
        currency="usd",
    )
    company_merge(source=duplicate, target=kept, reason="x", actor=STAFF)
    assert AccountStatusChange.objects.filter(account=kept_account, cause="test").exists()
    by_day = dict(RevenueSnapshot.objects.filter(product=product).values_list("day", "mrr"))
    assert by_day == {today: 150, today - timedelta(days=1): 50}


def test_a_suspended_duplicate_account_is_not_lifted_by_a_merge(product, kept, duplicate):
    from companies.models import CompanyStatus
    from desk.services import account_suspend

    Account.objects.filter(company=kept).update(status=CompanyStatus.ACTIVE)
    account_suspend(company=duplicate, product_id=product.pk, reason="fraud", actor="user:bea")
    with pytest.raises(Conflict):
        company_merge(source=duplicate, target=kept, reason="x", actor=STAFF)


def test_billing_a_granting_subscription_brings_its_tier(product, catalog, kept, duplicate):
    from entitlements.models import Tier

    pro = Tier.objects.get(product=product, code="pro")
    SubscriptionFactory(company=duplicate, product=product, stripe_customer_id="cus_dup", tier=pro)
    BillingProfileFactory(company=duplicate, product=product, stripe_customer_id="cus_dup")
    company_merge(source=duplicate, target=kept, reason="x", actor=STAFF)
    assert FeatureAccess.objects.filter(company=kept, tier=pro).exists()
    assert Invoice.objects.filter(company=duplicate).count() == 0
