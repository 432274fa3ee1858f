"""Health scores (SPEC §8): the stored result and its selector."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError

from companies.models import Account
from insights import health as rule
from insights.health import HealthFacts, LimitUse
from insights.models import AccountHealth, HealthSnapshot
from insights.selectors import account_health_map

NOW = datetime(2026, 6, 15, 3, 0, tzinfo=UTC)


@pytest.fixture
def account(product, company):
    return Account.objects.get(company=company, product=product)


@pytest.mark.django_db
def test_account_health_map_answers_stored_rows_in_one_query(account, django_assert_num_queries):
    AccountHealth.objects.create(account=account, score=42, risk_level="high", components=[], computed_at=NOW)
    with django_assert_num_queries(1):
        found = account_health_map([account.pk, "00000000-0000-0000-0000-000000000000"])
    assert list(found) == [account.pk]
    assert (found[account.pk].score, found[account.pk].risk_level) == (42, "high")
    with django_assert_num_queries(0):
        assert account_health_map([]) == {}


@pytest.mark.django_db
def test_one_snapshot_per_account_and_day(account):
    HealthSnapshot.objects.create(account=account, date=NOW.date(), score=80, risk_level="low")
    with pytest.raises(IntegrityError):
        HealthSnapshot.objects.create(account=account, date=NOW.date(), score=70, risk_level="medium")


# --- the rule, on hand-computed cases ---------------------------------------------------


@pytest.mark.parametrize(
    "current, previous, expected",
    [
        (0, 0, 0),
        (10, 0, 100),
        (100, 100, 100),
        (150, 100, 100),
        (60, 100, 60),  # down 40%
        (25, 100, 25),
        (0, 100, 0),
    ],
)
def test_usage_trend(current, previous, expected):
    value, detail = rule.usage_trend(HealthFacts(events_current=current, events_previous=previous))
    assert value == expected
    assert detail.endswith(".")


@pytest.mark.parametrize(
    "limits, expected",
    [
        ([], 100),
        ([LimitUse("a", 30, 40)], 100),  # 75%: comfortable
        ([LimitUse("a", 45, 50)], 40),  # 90% → (100 − 90) × 4
        ([LimitUse("a", 10, 50), LimitUse("b", 50, 50)], 0),  # the worst feature counts: at its limit
        ([LimitUse("a", 80, 50)], 0),  # past the limit
    ],
)
def test_limit_pressure(limits, expected):
    assert rule.limit_pressure(HealthFacts(limits=limits))[0] == expected


def test_limit_pressure_names_the_worst_feature():
    detail = rule.limit_pressure(HealthFacts(limits=[LimitUse("ai_credit", 45, 50), LimitUse("msgs", 1, 50)]))[1]
    assert detail == "ai_credit is at 90% of its limit (45 of 50) this period."


@pytest.mark.parametrize(
    "available, used, expected",
    [
        (None, 0, 100),  # no wallet
        (500, 0, 100),  # no burn
        (600, 300, 100),  # 600 / (300 / 30) = 60 days
        (300, 300, 50),  # 30 days
        (100, 300, 17),  # 10 days → 16.67 → 17
        (0, 300, 0),
        (-20, 300, 0),  # in debt
    ],
)
def test_credit_runway(available, used, expected):
    assert rule.credit_runway(HealthFacts(credits_available=available, credits_used_recent=used))[0] == expected


def test_credit_runway_detail_says_days():
    assert rule.credit_runway(HealthFacts(credits_available=300, credits_used_recent=300))[1] == (
        "300 credits last about 30 days at the last 30 days' use of 300."
    )


@pytest.mark.parametrize(
    "facts, expected",
    [
        (HealthFacts(), 100),
        (HealthFacts(open_invoices_due=1), 60),
        (HealthFacts(uncollectible_invoices=1, open_invoices_due=2), 25),
        (HealthFacts(failing_subscriptions=["past_due"], uncollectible_invoices=1), 0),
    ],
)
def test_payment_health(facts, expected):
    assert rule.payment_health(facts)[0] == expected


@pytest.mark.parametrize(
    "days_ago, expected",
    [(None, 0), (0, 100), (1, 100), (2, 97), (15, 52), (30, 0), (90, 0)],
)
def test_recency(days_ago, expected):
    facts = HealthFacts(last_usage_on=None if days_ago is None else NOW.date() - timedelta(days=days_ago))
    assert rule.recency(facts, now=NOW)[0] == expected


def test_score_is_the_weighted_mean_and_names_each_component():
    facts = HealthFacts(
        events_current=60, events_previous=100,  # 60
        limits=[LimitUse("ai_credit", 45, 50)],  # 40
        credits_available=300, credits_used_recent=300,  # 50
        open_invoices_due=1,  # 60
        last_usage_on=NOW.date() - timedelta(days=2),  # 97
    )
    result = rule.health_score(facts, now=NOW)
    # (30×60 + 15×40 + 15×50 + 25×60 + 15×97) / 100 = (1800 + 600 + 750 + 1500 + 1455) / 100 = 61.05
    assert result.score == 61
    assert result.risk_level == "medium"
    assert [(c.name, c.value, c.weight) for c in result.components] == [
        ("usage_trend", 60, 30), ("limit_pressure", 40, 15), ("credit_runway", 50, 15),
        ("payment_health", 60, 25), ("recency", 97, 15),
    ]
    custom = rule.health_score(facts, now=NOW, weights={"usage_trend": 0, "limit_pressure": 0, "credit_runway": 0,
                                                        "payment_health": 0, "recency": 1})
    assert custom.score == 97


@pytest.mark.parametrize(
    "score, expected",
    [(100, "low"), (75, "low"), (74, "medium"), (50, "medium"), (49, "high"), (25, "high"), (24, "critical"), (0, "critical")],
)
def test_risk_thresholds(score, expected):
    assert rule.risk_level(score, rule.DEFAULT_THRESHOLDS) == expected


def test_risk_thresholds_come_from_settings(settings):
    settings.HEALTH_RISK_THRESHOLDS = {"low": 95, "medium": 90, "high": 80}
    from django.conf import settings as live

    assert rule.risk_level(85, live.HEALTH_RISK_THRESHOLDS) == "high"


# --- the service and the job: facts read through the other apps' selectors ------------------


def _hand_computed_company(product, company, features):
    """The facts of `test_score_is_the_weighted_mean_and_names_each_component`, made real."""
    from django.utils import timezone

    from billing.models import Invoice
    from credits.services import credits_debit, credits_grant
    from metering.models import UsageDailyRollup
    from metering.services import usage_track

    limited, unlimited = features
    now = timezone.now()
    today = now.astimezone(UTC).date()
    usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", quantity=45)  # 1 event, 90%
    UsageDailyRollup.objects.create(company=company, feature=unlimited, day=today - timedelta(days=3), events=59)
    UsageDailyRollup.objects.create(company=company, feature=unlimited, day=today - timedelta(days=20), events=100)
    credits_grant(company_id=company.pk, product_id=product.pk, amount=600, reason="welcome")
    credits_debit(product_id=product.pk, company_id=company.pk, amount=300, job_id="j1", source_service="tests")
    Invoice.objects.create(
        company=company, product=product, stripe_invoice_id="in_open", stripe_customer_id="cus_1", status="open",
        currency="usd", total=1000, amount_due=1000,
    )
    Invoice.objects.create(  # paid: no effect
        company=company, product=product, stripe_invoice_id="in_paid", stripe_customer_id="cus_1", status="paid",
        currency="usd", total=1000, amount_paid=1000,
    )
    return now


@pytest.mark.django_db
def test_compute_reads_every_component_and_stores_the_result_and_todays_history(product, company, features):
    from insights.services import health_compute

    now = _hand_computed_company(product, company, features)
    assert health_compute(product_id=product.pk, now=now) == 1

    health = AccountHealth.objects.get(account__company=company, account__product=product)
    # (30×60 + 15×40 + 15×50 + 25×60 + 15×100) / 100 = 61.5 → 62 (half-up)
    assert (health.score, health.risk_level, health.computed_at) == (62, "medium", now)
    assert [(c["name"], c["value"], c["weight"]) for c in health.components] == [
        ("usage_trend", 60, 30), ("limit_pressure", 40, 15), ("credit_runway", 50, 15),
        ("payment_health", 60, 25), ("recency", 100, 15),
    ]
    assert health.components[0]["detail"] == "60 usage events in the last 14 days, down 40% from 100."
    assert health.components[4]["detail"] == "Used today."
    assert list(HealthSnapshot.objects.values_list("date", "score", "risk_level")) == [
        (now.astimezone(UTC).date(), 62, "medium")
    ]


@pytest.mark.django_db
def test_the_job_is_idempotent(product, company, features):
    from django.core.management import call_command

    from insights.models import AccountStatusChange

    _hand_computed_company(product, company, features)
    call_command("run_job", "compute_health", stdout=open("/dev/null", "w"))
    first = list(AccountHealth.objects.values_list("account_id", "score", "risk_level", "components"))
    call_command("run_job", "compute_health", stdout=open("/dev/null", "w"))
    assert list(AccountHealth.objects.values_list("account_id", "score", "risk_level", "components")) == first
    assert HealthSnapshot.objects.count() == 1
    assert AccountStatusChange.objects.count() == 0  # a prospect stays one


@pytest.mark.django_db
def test_high_risk_makes_a_granting_account_at_risk_through_the_lifecycle_rule(product, company, settings):
    """No usage at all: trend 0, recency 0, the rest 100 → 55; with stricter
    thresholds that is critical, so the lifecycle rule says at_risk (health_risk);
    back to medium, the risk clears."""
    from billing.models import SubscriptionStatus
    from insights.models import AccountStatusChange
    from insights.services import health_compute, lifecycle_update
    from tests.factories.billing import SubscriptionFactory
    from tests.factories.entitlements import TierFactory

    SubscriptionFactory(company=company, product=product, tier=TierFactory(product=product), status=SubscriptionStatus.ACTIVE)
    lifecycle_update()
    account = Account.objects.get(company=company, product=product)
    assert account.status == "active"

    settings.HEALTH_RISK_THRESHOLDS = {"low": 90, "medium": 70, "high": 60}
    health_compute()
    account.refresh_from_db()
    assert (account.health.score, account.health.risk_level, account.status) == (55, "critical", "at_risk")

    settings.HEALTH_RISK_THRESHOLDS = {"low": 75, "medium": 50, "high": 25}
    health_compute()
    account.refresh_from_db()
    assert (account.health.risk_level, account.status) == ("medium", "active")
    assert list(AccountStatusChange.objects.order_by("created_at").values_list("to_status", "cause")) == [
        ("active", "subscription_granted"), ("at_risk", "health_risk"), ("active", "risk_cleared"),
    ]


@pytest.mark.django_db
def test_another_products_usage_and_credits_do_not_count(product, other_product, company):
    """The account of `product` is scored on `product`'s facts only."""
    from credits.services import credits_grant
    from insights.services import health_compute
    from metering.models import UsageDailyRollup
    from tests.factories.companies import ProductLinkFactory
    from tests.factories.entitlements import MeteredFeatureFactory

    ProductLinkFactory(product=other_product, company=company, external_org_id="org_acme_crm")
    other_feature = MeteredFeatureFactory(product=other_product, code="crm_calls")
    UsageDailyRollup.objects.create(company=company, feature=other_feature, day=NOW.date(), events=500)
    credits_grant(company_id=company.pk, product_id=other_product.pk, amount=10, reason="x")
    health_compute(product_id=product.pk, now=NOW)
    health = AccountHealth.objects.get(account__product=product)
    values = {c["name"]: c["value"] for c in health.components}
    assert values["usage_trend"] == 0
    assert health.components[2]["detail"] == "No credit wallet."
    assert not AccountHealth.objects.filter(account__product=other_product).exists()


# --- GET /companies/{companyId}/health -------------------------------------------------------


@pytest.mark.django_db
def test_health_api_answers_the_stored_score_components_and_history(api, product, company, account):
    from datetime import date

    AccountHealth.objects.create(
        account=account, score=61, risk_level="medium", computed_at=NOW,
        components=[{"name": "usage_trend", "value": 60, "weight": 30, "detail": "Down 40%."}],
    )
    HealthSnapshot.objects.create(account=account, date=date(2026, 6, 15), score=61, risk_level="medium")
    HealthSnapshot.objects.create(account=account, date=date(2026, 6, 14), score=70, risk_level="medium")
    HealthSnapshot.objects.create(account=account, date=date(2025, 6, 1), score=10, risk_level="critical")  # > a year

    response = api.get(f"/api/v1/companies/{company.pk}/health")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "score": 61,
        "riskLevel": "medium",
        "components": [{"name": "usage_trend", "value": 60, "weight": 30, "detail": "Down 40%."}],
        "computedAt": "2026-06-15T03:00:00Z",
        "history": [
            {"date": "2026-06-14", "score": 70, "riskLevel": "medium"},
            {"date": "2026-06-15", "score": 61, "riskLevel": "medium"},
        ],
    }


@pytest.mark.django_db
def test_health_api_computes_a_score_never_computed(api, company, account):
    response = api.get(f"/api/v1/companies/{company.pk}/health")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [c["name"] for c in body["components"]] == list(rule.COMPONENTS)
    assert len(body["history"]) == 1
    assert AccountHealth.objects.filter(account=account).exists()


@pytest.mark.django_db
def test_health_api_is_isolated_by_product(api, other_api, other_product, company, account):
    AccountHealth.objects.create(account=account, score=61, risk_level="medium", components=[], computed_at=NOW)
    # Another product's key: this company is not linked to it.
    response = other_api.get(f"/api/v1/companies/{company.pk}/health")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        assert api.get(f"/api/v1/companies/{bad}/health").status_code == 404
    assert not AccountHealth.objects.filter(account__product=other_product).exists()


@pytest.mark.django_db
def test_health_api_linked_in_both_products_answers_each_products_own_score(api, other_api, other_product, company, account):
    from tests.factories.companies import ProductLinkFactory

    ProductLinkFactory(product=other_product, company=company, external_org_id="org_acme_crm")
    other = Account.objects.get(company=company, product=other_product)
    AccountHealth.objects.create(account=account, score=61, risk_level="medium", components=[], computed_at=NOW)
    AccountHealth.objects.create(account=other, score=12, risk_level="critical", components=[], computed_at=NOW)
    assert api.get(f"/api/v1/companies/{company.pk}/health").json()["score"] == 61
    assert other_api.get(f"/api/v1/companies/{company.pk}/health").json()["score"] == 12


@pytest.mark.django_db
def test_the_company_answer_carries_the_computed_health_score_and_risk_level(api, other_api, company, account):
    """SPEC §3: `healthScore` and `riskLevel` are derived company fields, read-only, pushed by
    the health job into this product's account (null until computed)."""
    before = api.get(f"/api/v1/companies/{company.pk}").json()
    assert (before["healthScore"], before["riskLevel"]) == (None, None)

    assert api.get(f"/api/v1/companies/{company.pk}/health").status_code == 200  # computes it

    health = AccountHealth.objects.get(account=account)
    after = api.get(f"/api/v1/companies/{company.pk}").json()
    assert (after["healthScore"], after["riskLevel"]) == (health.score, health.risk_level)
    listed = api.get("/api/v1/companies").json()["data"]
    assert [(c["healthScore"], c["riskLevel"]) for c in listed if c["id"] == str(company.pk)] == [
        (health.score, health.risk_level)
    ]
    ignored = api.patch(f"/api/v1/companies/{company.pk}", {"healthScore": 1}, format="json")
    assert ignored.status_code == 400  # read-only fields are unknown input
