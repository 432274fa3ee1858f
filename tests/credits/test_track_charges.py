"""Credit-priced tracks (SPEC §5): billable units × creditCost debited in the
transaction of the usage event, once, or nothing at all."""

from __future__ import annotations

import pytest

from config.errors import PaymentRequired
from credits.models import EntryKind, LedgerEntry, Wallet
from metering.models import UsageEvent, UsageMeter
from metering.services import TrackRequest, usage_track, usage_track_batch
from tests.factories.entitlements import FeatureAccessFactory, MeteredFeatureFactory
from tests.metering.test_concurrency import run_concurrently


@pytest.fixture
def image(product, company):
    feature = MeteredFeatureFactory(product=product, code="ai_image", credit_cost=5, stripe_meter_event_name="")
    FeatureAccessFactory(company=company, feature=feature, quantity_limit=None, included_quantity=2)
    return feature


def track(product, company, quantity=1, key=None):
    return usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_image", quantity=quantity,
                       idempotency_key=key)


def test_track_charges_billable_units_times_cost(product, company, image, grant):
    grant(100)
    first = track(product, company, quantity=3, key="k1")  # 2 included, 1 billable
    entry = LedgerEntry.objects.get(kind=EntryKind.USAGE)
    assert (entry.amount, entry.job_id, entry.source_service) == (-5, str(first.event_id), "usage:ai_image")
    again = track(product, company, quantity=3, key="k1")
    assert again.replayed and LedgerEntry.objects.filter(kind=EntryKind.USAGE).count() == 1
    track(product, company, quantity=4)
    assert Wallet.objects.get().total == 100 - 5 - 20


def test_included_units_cost_nothing_even_without_a_wallet(product, company, image):
    track(product, company, quantity=2)
    assert not LedgerEntry.objects.exists()


def test_402_leaves_nothing_behind(product, company, image, grant):
    grant(7)
    track(product, company, quantity=2)
    with pytest.raises(PaymentRequired) as error:
        track(product, company, quantity=2, key="big")
    assert error.value.details == {"required": 10, "available": 7}
    assert UsageEvent.objects.count() == 1 and UsageMeter.objects.get().value == 2
    assert not LedgerEntry.objects.filter(kind=EntryKind.USAGE).exists()
    # The key was not used up: the same call succeeds once credits arrive.
    grant(3)
    assert track(product, company, quantity=2, key="big").current_usage == 4


def test_track_without_wallet_is_402(api, company, image):
    api.post("/api/v1/usage/track", {"companyId": str(company.pk), "featureCode": "ai_image", "quantity": 2},
             format="json")
    response = api.post("/api/v1/usage/track", {"companyId": str(company.pk), "featureCode": "ai_image"}, format="json")
    assert response.status_code == 402
    assert response.json()["error"]["details"] == {"required": 5, "available": 0}


def test_batch_judges_each_event_on_its_own(product, company, image, grant):
    grant(12)
    requests = [TrackRequest(feature_code="ai_image", company_id=company.pk, quantity=q) for q in (2, 1, 1, 1, 2)]
    results = usage_track_batch(product_id=product.pk, requests=requests)
    assert [r.status for r in results] == ["ok", "ok", "ok", "error", "error"]
    assert results[3].error.code == "PAYMENT_REQUIRED"
    assert UsageMeter.objects.get().value == 4
    assert LedgerEntry.objects.filter(kind=EntryKind.USAGE).count() == 2
    assert Wallet.objects.get().total == 2


def test_a_track_charge_is_refunded_like_any_debit(api, product, company, image, grant):
    grant(50)
    result = track(product, company, quantity=4)
    response = api.post("/api/v1/credits/refund", {"companyId": str(company.pk), "refundForJobId": str(result.event_id),
                        "sourceService": "usage:ai_image", "reason": "bad render"}, format="json")
    assert response.status_code == 200 and response.json()["refunded"] == 10


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_tracks_charge_exactly_what_the_wallet_holds(product, company, image, grant):
    grant(25)  # 5 billable images, after the 2 included
    results = run_concurrently([lambda: track(product, company) for _ in range(16)])
    ok = [r for r in results if not isinstance(r, Exception)]
    assert len(ok) == 7 and all(isinstance(r, PaymentRequired) for r in results if isinstance(r, Exception))
    assert UsageMeter.objects.get().value == 7 and Wallet.objects.get().total == 0


def test_frozen_wallet_refuses_credit_priced_tracks(product, company, image, grant):
    from config.errors import Locked
    from credits.services import wallet_freeze

    wallet = grant(50).lot.wallet
    track(product, company, quantity=2)  # within the included quantity: no charge, no refusal
    wallet_freeze(wallet=wallet, reason="Dispute", actor="user:ann")
    with pytest.raises(Locked):
        track(product, company)
    assert UsageMeter.objects.get().value == 2


def test_batch_api_reports_402_per_event(api, product, company, image, grant):
    grant(5)
    events = [{"companyId": str(company.pk), "featureCode": "ai_image", "quantity": q} for q in (2, 1, 1)]
    body = api.post("/api/v1/usage/track-batch", {"events": events}, format="json").json()
    assert [r["status"] for r in body["results"]] == ["ok", "ok", "error"]
    error = body["results"][2]["error"]
    assert error["code"] == "PAYMENT_REQUIRED" and error["httpStatus"] == 402
    assert error["details"] == {"required": 5, "available": 0}
