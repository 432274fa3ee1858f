"""Lifecycle status (SPEC §3): kept by the system, one event per change with
its cause, `company.status_changed` to the product."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.models import SubscriptionStatus
from companies.models import Account, CompanyStatus as S
from insights.models import AccountStatusChange
from insights.rules import LifecycleFacts, lifecycle_status
from insights.services import account_status_change, lifecycle_update
from notifications.models import Event
from tests.factories.billing import SubscriptionFactory
from tests.factories.entitlements import TierFactory

NOW = timezone.now()


def facts(status, *, granting=False, failing=False, risk=False, ever=False, reactivated_days=None):
    reactivated_at = NOW - timedelta(days=reactivated_days) if reactivated_days is not None else None
    return LifecycleFacts(status=status, granting=granting, payment_failing=failing, high_risk=risk,
                          ever_subscribed=ever, reactivated_at=reactivated_at)


@pytest.mark.parametrize(
    "given, expected",
    [
        (facts(S.PROSPECT), (S.PROSPECT, "never_subscribed")),
        (facts(S.PROSPECT, granting=True, ever=True), (S.ACTIVE, "subscription_granted")),
        (facts(S.ACTIVE, ever=True), (S.CHURNED, "no_granting_subscription")),
        (facts(S.ACTIVE), (S.CHURNED, "no_granting_subscription")),  # its subscription row is gone
        (facts(S.ACTIVE, granting=True, failing=True, ever=True), (S.AT_RISK, "payment_failing")),
        (facts(S.ACTIVE, granting=True, risk=True, ever=True), (S.AT_RISK, "health_risk")),
        (facts(S.AT_RISK, granting=True, ever=True), (S.ACTIVE, "risk_cleared")),
        (facts(S.CHURNED, granting=True, ever=True), (S.REACTIVATED, "subscription_granted_again")),
        (facts(S.CHURNED, granting=True, failing=True, ever=True), (S.REACTIVATED, "subscription_granted_again")),
        (facts(S.REACTIVATED, granting=True, ever=True, reactivated_days=89), (S.REACTIVATED, "reactivated_recently")),
        (facts(S.REACTIVATED, granting=True, ever=True, reactivated_days=90), (S.ACTIVE, "reactivated_90_days_ago")),
        (facts(S.REACTIVATED, granting=True, failing=True, ever=True, reactivated_days=3), (S.AT_RISK, "payment_failing")),
        (facts(S.AT_RISK, granting=True, ever=True, reactivated_days=3), (S.REACTIVATED, "risk_cleared")),
        (facts(S.REACTIVATED, ever=True, reactivated_days=3), (S.CHURNED, "no_granting_subscription")),
        (facts(S.SUSPENDED, granting=True, ever=True), (S.SUSPENDED, "suspended_by_staff")),
        (facts(S.SUSPENDED), (S.SUSPENDED, "suspended_by_staff")),
    ],
)
def test_lifecycle_rule(given, expected):
    assert lifecycle_status(given, now=NOW) == expected


@pytest.fixture
def account(product):
    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    company = CompanyFactory(name="Acme")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    return Account.objects.get(company=company, product=product)


def _statuses(account):
    return list(
        AccountStatusChange.objects.filter(account=account).order_by("created_at").values_list("from_status", "to_status", "cause")
    )


@pytest.mark.django_db
def test_the_job_follows_a_subscription_through_its_life_with_one_event_per_change(product, account):
    assert account.status == S.PROSPECT
    tier = TierFactory(product=product)
    sub = SubscriptionFactory(company=account.company, product=product, tier=tier, status=SubscriptionStatus.ACTIVE)

    assert lifecycle_update() == 1
    assert lifecycle_update() == 0  # idempotent
    sub.status = SubscriptionStatus.PAST_DUE
    sub.save()
    call_command("run_job", "update_lifecycle", stdout=open("/dev/null", "w"))
    sub.status = SubscriptionStatus.CANCELED
    sub.save()
    lifecycle_update()
    SubscriptionFactory(company=account.company, product=product, tier=tier, status=SubscriptionStatus.ACTIVE)
    lifecycle_update()
    lifecycle_update(now=timezone.now() + timedelta(days=91))

    assert _statuses(account) == [
        (S.PROSPECT, S.ACTIVE, "subscription_granted"),
        (S.ACTIVE, S.AT_RISK, "payment_failing"),
        (S.AT_RISK, S.CHURNED, "no_granting_subscription"),
        (S.CHURNED, S.REACTIVATED, "subscription_granted_again"),
        (S.REACTIVATED, S.ACTIVE, "reactivated_90_days_ago"),
    ]
    account.refresh_from_db()
    assert account.status == S.ACTIVE
    events = Event.objects.filter(type="company.status_changed", product=product).order_by("created_at")
    assert [(e.data["previousStatus"], e.data["status"], e.data["cause"]) for e in events] == _statuses(account)
    assert all(e.data["companyId"] == str(account.company_id) for e in events)


@pytest.mark.django_db
def test_a_subscription_of_another_product_does_not_make_this_account_active(product, other_product, account):
    from tests.factories.companies import ProductLinkFactory

    ProductLinkFactory(product=other_product, company=account.company, external_org_id="org_acme_crm")
    SubscriptionFactory(company=account.company, product=other_product, tier=TierFactory(product=other_product))

    lifecycle_update()

    account.refresh_from_db()
    assert account.status == S.PROSPECT
    other = Account.objects.get(company=account.company, product=other_product)
    assert other.status == S.ACTIVE
    # The other product's change is notified to the other product only.
    assert not Event.objects.filter(product=product).exists()


@pytest.mark.django_db
def test_a_suspended_account_is_left_alone_until_staff_reactivate(product, account):
    SubscriptionFactory(company=account.company, product=product, tier=TierFactory(product=product))
    account_status_change(account_id=account.id, to_status=S.SUSPENDED, cause="staff_suspend", actor="alice",
                          reason="fraud check")
    assert lifecycle_update() == 0
    change = AccountStatusChange.objects.get(account=account)
    assert (change.cause, change.actor_label, change.reason) == ("staff_suspend", "alice", "fraud check")


@pytest.mark.django_db
def test_an_incomplete_checkout_leaves_a_prospect_a_prospect(product, account):
    SubscriptionFactory(company=account.company, product=product, status=SubscriptionStatus.INCOMPLETE_EXPIRED)
    assert lifecycle_update() == 0
