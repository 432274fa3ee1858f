"""Daily rollups (SPEC §5) equal the events they summarise, after any
sequence of usage writes (track, batch, set, adjust), under threads, after a
backfill and across a merge."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import ApplicationError
from metering.models import UsageDailyRollup, UsageEvent
from metering.services import (
    TrackRequest,
    rollups_merge,
    rollups_rebuild,
    usage_adjust,
    usage_set,
    usage_track,
    usage_track_batch,
)
from tests.factories.companies import CompanyFactory, ProductLinkFactory
from tests.factories.entitlements import FeatureAccessFactory

from .conftest import events_summary, rollups_summary

CODES = ("ai_credit", "messages")
# Minutes back from now: up to Stripe's 35-day window, so events land on many
# UTC days, in the current and the previous month.
BACKDATE = st.integers(min_value=0, max_value=35 * 24 * 60 - 10)

track_op = st.tuples(st.just("track"), st.sampled_from(CODES), st.integers(1, 20), BACKDATE)
batch_op = st.tuples(
    st.just("batch"), st.lists(st.tuples(st.sampled_from(CODES), st.integers(1, 15), BACKDATE), min_size=1, max_size=8)
)
set_op = st.tuples(st.just("set"), st.sampled_from(CODES), st.integers(0, 80))
adjust_op = st.tuples(st.just("adjust"), st.sampled_from(CODES), st.integers(-30, 30).filter(bool))
operations = st.lists(st.one_of(track_op, batch_op, set_op, adjust_op), min_size=1, max_size=12)


def _apply(product, company, op) -> None:
    now = timezone.now()
    kind = op[0]
    try:
        if kind == "track":
            _, code, quantity, back = op
            usage_track(
                product_id=product.id, company_id=company.id, feature_code=code, quantity=quantity,
                timestamp=now - timedelta(minutes=back),
            )
        elif kind == "batch":
            requests = [
                TrackRequest(feature_code=code, quantity=quantity, company_id=company.id,
                             timestamp=now - timedelta(minutes=back))
                for code, quantity, back in op[1]
            ]
            usage_track_batch(product_id=product.id, requests=requests)
        elif kind == "set":
            _, code, value = op
            usage_set(product_id=product.id, company_id=company.id, feature_code=code, absolute_value=value, reason="t")
        else:
            _, code, delta = op
            usage_adjust(product_id=product.id, company_id=company.id, feature_code=code, delta=delta, reason="t")
    except ApplicationError:
        pass  # refused (limit, below zero): nothing recorded, rollups untouched


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_rollups_equal_the_events_after_any_sequence_of_usage_writes(product, company, features, ops):
    for op in ops:
        _apply(product, company, op)
    assert rollups_summary() == events_summary()


@pytest.mark.django_db
def test_a_refused_track_and_a_replay_leave_the_rollups_alone(product, company, features):
    usage_track(product_id=product.id, company_id=company.id, feature_code="ai_credit", quantity=7, idempotency_key="k")
    usage_track(product_id=product.id, company_id=company.id, feature_code="ai_credit", quantity=7, idempotency_key="k")
    with pytest.raises(ApplicationError):
        usage_track(product_id=product.id, company_id=company.id, feature_code="ai_credit", quantity=60)
    (row,) = UsageDailyRollup.objects.all()
    assert (row.quantity, row.billable_quantity, row.events) == (7, 2, 1)
    assert row.day == timezone.now().date()


@pytest.mark.django_db
def test_backfill_rebuilds_the_rollups_from_the_events(product, company, features):
    for op in [("track", "messages", 3, 0), ("track", "messages", 4, 3000), ("set", "ai_credit", 9),
               ("batch", [("ai_credit", 2, 10), ("messages", 1, 20000)])]:
        _apply(product, company, op)
    expected = rollups_summary()
    UsageDailyRollup.objects.all().delete()
    UsageDailyRollup.objects.create(company=company, feature=features[0], day="2020-01-01", quantity=99)  # stale

    call_command("backfill_rollups", stdout=open("/dev/null", "w"))

    assert rollups_summary() == expected == events_summary()


@pytest.mark.django_db
def test_merge_moves_the_duplicates_rollups_onto_the_kept_company(product, company, features):
    duplicate = CompanyFactory(name="Acme dup")
    ProductLinkFactory(product=product, company=duplicate, external_org_id="org_dup")
    for feature in features:
        FeatureAccessFactory(company=duplicate, feature=feature, quantity_limit=None)
    usage_track(product_id=product.id, company_id=company.id, feature_code="messages", quantity=2)
    usage_track(product_id=product.id, company_id=duplicate.id, feature_code="messages", quantity=5)
    usage_track(product_id=product.id, company_id=duplicate.id, feature_code="ai_credit", quantity=1)

    rollups_merge(from_company_id=duplicate.id, into_company_id=company.id)

    kept = {r.feature.code: (r.quantity, r.events) for r in UsageDailyRollup.objects.filter(company=company)}
    assert kept == {"messages": (7, 2), "ai_credit": (1, 1)}
    assert not UsageDailyRollup.objects.filter(company=duplicate).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rollups_stay_exact_under_concurrent_tracks_batches_and_corrections(product, company, features):
    start = threading.Event()
    now = timezone.now()

    def run(n):
        try:
            start.wait(timeout=10)
            if n % 4 == 0:
                usage_track_batch(product_id=product.id, requests=[
                    TrackRequest(feature_code="messages", quantity=1 + i, company_id=company.id,
                                 timestamp=now - timedelta(hours=i * 13)) for i in range(5)
                ])
            elif n % 4 == 1:
                usage_adjust(product_id=product.id, company_id=company.id, feature_code="messages", delta=2, reason="t")
            else:
                usage_track(product_id=product.id, company_id=company.id, feature_code=CODES[n % 2], quantity=1,
                            timestamp=now - timedelta(hours=n % 3 * 24))
        except ApplicationError:
            pass
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(run, n) for n in range(96)]
        start.set()
        for future in futures:
            future.result()

    assert UsageEvent.objects.count() > 90
    assert rollups_summary() == events_summary()
    rollups_rebuild()
    assert rollups_summary() == events_summary()
