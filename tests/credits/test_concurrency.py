"""SPEC §7's rules under real concurrency: threads with their own PostgreSQL
connections on one wallet at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from config.errors import PaymentRequired
from credits import services
from credits.models import EntryKind, LedgerEntry, Reservation, Wallet
from tests.metering.test_concurrency import run_concurrently

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def debit_call(product, company, amount=1, job="job", source="svc"):
    return lambda: services.credits_debit(
        product_id=product.pk, company_id=company.pk, amount=amount, job_id=job, source_service=source
    )


def test_exactly_k_of_n_debits_succeed(product, company, grant):
    grant(7, bucket="subscription", expires_in=timedelta(days=3))
    grant(5, bucket="topup")
    results = run_concurrently([debit_call(product, company, job=f"job-{n}") for n in range(30)])
    succeeded = [r for r in results if isinstance(r, services.DebitResult)]
    refused = [r for r in results if isinstance(r, PaymentRequired)]
    assert len(succeeded) == 12 and len(refused) == 18
    assert Wallet.objects.get().total == 0


def test_concurrent_identical_debits_write_one_entry(product, company, grant):
    grant(100)
    results = run_concurrently([debit_call(product, company, amount=3) for _ in range(16)])
    assert all(isinstance(r, services.DebitResult) for r in results), results
    assert len({r.entry.pk for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert LedgerEntry.objects.filter(kind=EntryKind.USAGE).count() == 1
    assert Wallet.objects.get().total == 97


def test_reserve_and_debit_never_overdraw_available(product, company, grant):
    grant(50)

    def reserve(n):
        return lambda: services.reservation_create(
            product_id=product.pk, company_id=company.pk, run_id=f"run-{n}", amount=5, ttl_seconds=60
        )

    calls = [reserve(n) if n % 2 else debit_call(product, company, amount=5, job=f"j{n}") for n in range(24)]
    results = run_concurrently(calls)
    ok = [r for r in results if not isinstance(r, Exception)]
    assert all(isinstance(r, PaymentRequired) for r in results if isinstance(r, Exception)), results
    assert len(ok) == 10
    wallet = Wallet.objects.get()
    assert wallet.available == 0 and wallet.total >= wallet.reserved


def test_expiry_sweep_racing_a_late_settle_charges_once(product, company, grant):
    grant(100)
    for round_ in range(6):
        held = services.reservation_create(
            product_id=product.pk, company_id=company.pk, run_id=f"run-{round_}", amount=20, ttl_seconds=1,
            charge_on_expiry=True,
        )
        later = timezone.now() + timedelta(seconds=5)
        calls = [
            lambda: services.reservations_expire(now=later),
            lambda: services.reservation_settle(product_id=product.pk, reservation_id=held.reservation.pk, amount=8),
        ] * 3
        results = run_concurrently(calls)
        assert not [r for r in results if isinstance(r, Exception) and not isinstance(r, int)], results
        reservation = Reservation.objects.get(pk=held.reservation.pk)
        assert reservation.status == "settled" and reservation.charged == 8
    assert Wallet.objects.get().total == 100 - 6 * 8
    assert Wallet.objects.get().reserved == 0
