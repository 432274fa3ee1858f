"""Usage alerts: `usage.threshold_reached` / `usage.limit_reached` exactly once
per meter period and threshold (SPEC §5, §11)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from metering.models import UsageAlert
from metering.services import TrackRequest, usage_adjust, usage_set, usage_track, usage_track_batch
from metering.services.alerts import crossed_thresholds
from notifications.models import Event

pytestmark = pytest.mark.django_db


def _events(type=None):
    events = Event.objects.order_by("created_at", "id")
    if type:
        events = events.filter(type=type)
    return list(events)


def test_crossing_arithmetic():
    assert crossed_thresholds(thresholds=(80, 100), quantity_limit=100, previous_value=79, new_value=80) == [80]
    assert crossed_thresholds(thresholds=(80, 100), quantity_limit=100, previous_value=80, new_value=99) == []
    assert crossed_thresholds(thresholds=(80, 100), quantity_limit=100, previous_value=10, new_value=100) == [80, 100]
    assert crossed_thresholds(thresholds=(80,), quantity_limit=5, previous_value=3, new_value=4) == [80]  # ceil(4.0)
    assert crossed_thresholds(thresholds=(50,), quantity_limit=3, previous_value=1, new_value=2) == [50]  # ceil(1.5)
    assert crossed_thresholds(thresholds=(80, 100), quantity_limit=None, previous_value=0, new_value=10**6) == []
    assert crossed_thresholds(thresholds=(), quantity_limit=10, previous_value=9, new_value=10) == [100]
    assert crossed_thresholds(thresholds=(80,), quantity_limit=10, previous_value=10, new_value=5) == []


def test_track_emits_each_threshold_once(product, company, feature, access):
    for _ in range(79):
        usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit")
    assert _events() == []
    usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit")
    [threshold] = _events()
    assert threshold.type == "usage.threshold_reached"
    assert threshold.data["threshold"] == 80 and threshold.data["currentUsage"] == 80
    assert threshold.data["featureCode"] == "ai_credit" and threshold.data["externalOrgId"] == "org_acme"
    assert threshold.data["companyId"] == str(company.pk) and threshold.data["quantityLimit"] == 100
    assert threshold.data["periodStart"].endswith("Z") and threshold.data["resetAt"].endswith("Z")
    usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", quantity=20)
    assert [e.type for e in _events()] == [
        "usage.threshold_reached",
        "usage.threshold_reached",
        "usage.limit_reached",
    ]
    assert _events("usage.limit_reached")[0].data["currentUsage"] == 100


def test_a_correction_down_and_up_again_does_not_notify_twice(product, company, feature, access):
    usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", quantity=85)
    assert len(_events()) == 1
    usage_adjust(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", delta=-50, reason="refund")
    usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", quantity=50)
    assert len(_events("usage.threshold_reached")) == 1
    # Staff may set usage past the limit: the limit is reached (once).
    usage_set(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", absolute_value=150, reason="import")
    usage_set(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", absolute_value=0, reason="undo")
    usage_set(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", absolute_value=120, reason="again")
    assert len(_events("usage.limit_reached")) == 1
    assert UsageAlert.objects.count() == 2


def test_batch_emits_in_the_batch_transaction(product, company, feature, access):
    requests = [TrackRequest(feature_code="ai_credit", company_id=company.pk, quantity=30) for _ in range(4)]
    results = usage_track_batch(product_id=product.pk, requests=requests)
    assert [r.status for r in results] == ["ok", "ok", "ok", "error"]
    assert [(e.type, e.data.get("threshold")) for e in _events()] == [
        ("usage.threshold_reached", 80),
    ]
    assert _events()[0].data["currentUsage"] == 90


def test_custom_thresholds_and_no_limit(product, company, feature, access, make_metered):
    feature.alert_thresholds = [50]
    feature.save()
    usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", quantity=100)
    # 50 % notified; 100 % is not an alert threshold here but the limit is still reached.
    assert [(e.type, e.data.get("threshold")) for e in _events()] == [
        ("usage.threshold_reached", 50),
        ("usage.limit_reached", None),
    ]
    make_metered("unlimited", company=company, limit=None)
    usage_track(product_id=product.pk, company_id=company.pk, feature_code="unlimited", quantity=10**6)
    assert len(_events()) == 2


def test_a_refused_track_emits_nothing(product, company, feature, access):
    usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", quantity=70)
    with pytest.raises(Exception):
        usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", quantity=31)
    assert _events() == []


def test_a_replayed_track_emits_nothing_new(product, company, feature, access):
    for _ in range(2):
        usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", quantity=90, idempotency_key="k1")
    assert len(_events()) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_exactly_once_under_concurrent_tracks(product, company, feature, access):
    """Eight threads track one unit at a time up to the limit: each threshold is
    notified exactly once, whoever crosses it."""
    errors = []
    start = threading.Barrier(8)

    def worker():
        try:
            start.wait()
            for _ in range(13):
                try:
                    usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit")
                except Exception as error:  # 412 past the limit is expected
                    if getattr(error, "http_status", None) != 412:
                        errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(e.data.get("threshold") or 0 for e in _events("usage.threshold_reached")) == [80, 100]
    assert len(_events("usage.limit_reached")) == 1
    assert UsageAlert.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_exactly_once_when_corrections_race_tracks(product, company, feature, access):
    """Tracks and staff corrections that move the value back and forth across
    80 % at the same time: one notification for 80 %."""
    usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", quantity=70)
    errors = []
    start = threading.Barrier(4)

    def tracker():
        try:
            start.wait()
            for _ in range(5):
                usage_track(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", quantity=2)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    def corrector():
        try:
            start.wait()
            for value in (79, 85, 60, 81):
                usage_set(product_id=product.pk, company_id=company.pk, feature_code="ai_credit", absolute_value=value, reason="race")
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=tracker) for _ in range(3)] + [threading.Thread(target=corrector)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not [e for e in errors if getattr(e, "http_status", None) != 412]
    assert len([e for e in _events("usage.threshold_reached") if e.data["threshold"] == 80]) == 1
