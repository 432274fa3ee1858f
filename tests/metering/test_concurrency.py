"""SPEC §5's rules under real concurrency: threads with their own PostgreSQL
connections hitting the same meter at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from config.errors import PreconditionFailed
from metering.models import UsageEvent, UsageMeter, UsageSnapshot
from metering.services import TrackRequest, meters_close_due, usage_track, usage_track_batch

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 16


def run_concurrently(calls):
    """Run callables on THREADS threads, released together once all are
    queued; each thread closes its own database connection. Returns results
    (or the exceptions raised) in order."""
    start = threading.Event()

    def run(call):
        try:
            start.wait(timeout=10)
            return call()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(run, call) for call in calls]
        start.set()
        return [future.result() for future in futures]


def track_call(product, company, code, quantity=1, key=None):
    return lambda: usage_track(
        product_id=product.id, company_id=company.id, feature_code=code, quantity=quantity, idempotency_key=key
    )


def test_concurrent_increments_with_each_key_sent_twice_sum_exactly(product, company, make_metered):
    make_metered("messages", company=company)
    keys = [f"msg-{n}" for n in range(60)]
    calls = [track_call(product, company, "messages", quantity=3, key=key) for key in keys for _ in range(2)]

    results = run_concurrently(calls)

    assert not [r for r in results if isinstance(r, Exception)]
    meter = UsageMeter.objects.get(company=company, feature__code="messages")
    assert meter.value == 60 * 3
    assert UsageEvent.objects.filter(meter=meter).count() == 60
    # Both sends of a key answer with the same event; exactly one is a replay.
    for n in range(60):
        first, second = results[2 * n], results[2 * n + 1]
        assert first.event_id == second.event_id
        assert first.current_usage == second.current_usage
        assert sorted([first.replayed, second.replayed]) == [False, True]
    # The counter equals the event log: every previous→new step is distinct.
    steps = sorted(UsageEvent.objects.filter(meter=meter).values_list("previous_value", "new_value"))
    assert steps == [(3 * n, 3 * n + 3) for n in range(60)]


def test_race_against_a_limit_admits_exactly_what_fits(product, company, make_metered):
    make_metered("exports", company=company, limit=25)
    calls = [track_call(product, company, "exports", quantity=1, key=f"exp-{n}") for n in range(80)]

    results = run_concurrently(calls)

    admitted = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, PreconditionFailed)]
    assert len(admitted) == 25
    assert len(refused) == 55
    assert all(r.details["quantityLimit"] == 25 and r.details["requested"] == 1 for r in refused)
    meter = UsageMeter.objects.get(company=company, feature__code="exports")
    assert meter.value == 25
    assert UsageEvent.objects.filter(meter=meter).count() == 25
    assert sorted(r.current_usage for r in admitted) == list(range(1, 26))


def test_limit_race_with_uneven_quantities_never_overshoots(product, company, make_metered):
    make_metered("tokens", company=company, limit=100)
    calls = [track_call(product, company, "tokens", quantity=7) for _ in range(40)]

    results = run_concurrently(calls)

    admitted = [r for r in results if not isinstance(r, Exception)]
    assert len(admitted) == 100 // 7
    assert UsageMeter.objects.get(company=company, feature__code="tokens").value == 7 * (100 // 7)


def test_batches_and_single_tracks_interleaved_stay_exact(product, company, make_metered):
    make_metered("calls", company=company)
    batches = [
        [TrackRequest(feature_code="calls", company_id=company.id, quantity=2, idempotency_key=f"b{b}-{n}") for n in range(50)]
        for b in range(8)
    ]
    calls = []
    for b, batch in enumerate(batches):
        # Each batch is sent twice, concurrently with single tracks that reuse
        # some of its keys: every key still counts once.
        calls.append(lambda batch=batch: usage_track_batch(product_id=product.id, requests=batch))
        calls.append(lambda batch=batch: usage_track_batch(product_id=product.id, requests=batch))
        calls += [track_call(product, company, "calls", quantity=2, key=f"b{b}-{n}") for n in range(0, 50, 10)]
        calls += [track_call(product, company, "calls", quantity=5, key=f"single-{b}-{n}") for n in range(5)]

    results = run_concurrently(calls)

    assert not [r for r in results if isinstance(r, Exception)]
    meter = UsageMeter.objects.get(company=company, feature__code="calls")
    assert meter.value == 8 * 50 * 2 + 8 * 5 * 5
    assert UsageEvent.objects.filter(meter=meter).count() == 8 * 50 + 8 * 5
    for result in results:
        if isinstance(result, list):
            assert all(item.status in ("ok", "duplicate") for item in result)
    # The event log is one unbroken chain of values.
    steps = sorted(UsageEvent.objects.filter(meter=meter).values_list("previous_value", "new_value"))
    for (_, previous_new), (next_previous, _) in zip(steps, steps[1:], strict=False):
        assert previous_new == next_previous


def test_batch_races_against_a_limit_event_by_event(product, company, make_metered):
    make_metered("seats", company=company, limit=100)
    batch = lambda b: [  # noqa: E731
        TrackRequest(feature_code="seats", company_id=company.id, quantity=3, idempotency_key=f"s{b}-{n}")
        for n in range(20)
    ]
    calls = [lambda b=b: usage_track_batch(product_id=product.id, requests=batch(b)) for b in range(6)]
    calls += [track_call(product, company, "seats", quantity=1) for _ in range(10)]

    results = run_concurrently(calls)

    meter = UsageMeter.objects.get(company=company, feature__code="seats")
    assert meter.value <= 100
    assert meter.value == sum(UsageEvent.objects.filter(meter=meter).values_list("quantity", flat=True))
    ok_events = sum(
        sum(1 for item in r if item.status == "ok") for r in results if isinstance(r, list)
    )
    ok_singles = sum(1 for r in results if not isinstance(r, (list, Exception)))
    assert meter.value == ok_events * 3 + ok_singles
    # Nothing that fits was refused: after the race fewer than 3 units are left
    # or every batch event went through.
    assert 100 - meter.value < 3 or ok_events == 120


def test_period_boundary_race_writes_one_period_close_snapshot(product, company, make_metered):
    feature, _ = make_metered("daily_calls", company=company, reset_period="daily")
    now = timezone.now()
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    yesterday_meter = UsageMeter.objects.create(
        company=company, feature=feature, period_start=today - timedelta(days=1), period_end=today, value=42
    )
    calls = [track_call(product, company, "daily_calls", key=f"d-{n}") for n in range(24)]
    calls += [lambda: meters_close_due() for _ in range(8)]

    results = run_concurrently(calls)

    assert not [r for r in results if isinstance(r, Exception)]
    snapshots = UsageSnapshot.objects.filter(meter=yesterday_meter, snapshot_type="period_close")
    assert snapshots.count() == 1
    assert snapshots.get().absolute_value == 42
    yesterday_meter.refresh_from_db()
    assert yesterday_meter.value == 42 and yesterday_meter.closed_at is not None
    today_meter = UsageMeter.objects.get(company=company, feature=feature, period_start=today)
    assert today_meter.value == 24
    assert today_meter.closed_at is None
