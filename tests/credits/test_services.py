"""The wallet's rules through its services (SPEC §7)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.utils import IntegrityError
from django.utils import timezone

from config.errors import BadRequest, Conflict, Locked, NotFound, PaymentRequired
from credits import services
from credits.models import CreditLot, EntryKind, LedgerEntry, Reservation, Wallet
from credits.selectors import wallet_summary
from credits.verify import credits_verify

from .conftest import DAY


def debit(product, company, amount, job="job-1", source="svc", **kwargs):
    return services.credits_debit(
        product_id=product.pk, company_id=company.pk, amount=amount, job_id=job, source_service=source, **kwargs
    )


def test_spending_order_expiry_first_then_bucket_topups_without_expiry_last(product, company, grant):
    topup = grant(10, bucket="topup").lot
    promo_forever = grant(10, bucket="promotional").lot
    sub_late = grant(10, bucket="subscription", expires_in=10 * DAY).lot
    soon = timezone.now() + 2 * DAY
    promo_soon = grant(10, bucket="promotional", expires_at=soon).lot
    sub_soon = grant(10, bucket="subscription", expires_at=soon).lot
    expected = [sub_soon, promo_soon, sub_late, promo_forever, topup]
    for index, lot in enumerate(expected):
        entry = debit(product, company, 10, job=f"j{index}").entry
        assert [a["lot"] for a in entry.allocations] == [str(lot.pk)]
    assert Wallet.objects.get().total == 0


def test_debit_spans_lots_and_reports_bucket_balances(product, company, grant):
    grant(5, bucket="subscription", expires_in=DAY)
    grant(20, bucket="topup")
    result = debit(product, company, 8)
    assert result.entry.amount == -8
    assert result.entry.balance_after == 17
    assert result.entry.bucket_balances_after == {"subscription": 0, "promotional": 0, "topup": 17}
    assert [a["amount"] for a in result.entry.allocations] == [-5, -3]


def test_debit_is_idempotent_and_conflicts_on_another_amount(product, company, wallet):
    first = debit(product, company, 3)
    again = debit(product, company, 3)
    assert again.replayed and again.entry.pk == first.entry.pk
    with pytest.raises(Conflict) as error:
        debit(product, company, 4)
    assert error.value.details["ledgerEntryId"] == str(first.entry.pk)
    assert LedgerEntry.objects.filter(kind=EntryKind.USAGE).count() == 1


def test_replay_answers_even_when_the_wallet_is_empty_now(product, company, grant):
    grant(5)
    first = debit(product, company, 5)
    assert debit(product, company, 5).entry.pk == first.entry.pk


def test_not_enough_credits_is_402_and_writes_nothing(product, company, wallet):
    with pytest.raises(PaymentRequired) as error:
        debit(product, company, 101)
    assert error.value.details == {"required": 101, "available": 100}
    assert LedgerEntry.objects.filter(kind=EntryKind.USAGE).count() == 0


def test_frozen_wallet_refuses_debits_but_takes_refunds_and_grants(product, company, wallet, grant):
    debit(product, company, 10)
    services.wallet_freeze(wallet=wallet, reason="Dispute", actor="user:ann")
    with pytest.raises(Locked) as error:
        debit(product, company, 1, job="j2")
    assert error.value.details["reason"] == "wallet_frozen"
    assert services.credits_refund(
        product_id=product.pk, company_id=company.pk, refund_for_job_id="job-1", source_service="svc", reason="x"
    ).refunded == 10
    grant(5)
    services.wallet_unfreeze(wallet=wallet, reason="Resolved", actor="user:ann")
    debit(product, company, 1, job="j3")


def test_no_wallet_is_404(product, company):
    with pytest.raises(NotFound):
        debit(product, company, 1)


def test_usage_prefix_is_reserved(product, company, wallet):
    with pytest.raises(BadRequest):
        debit(product, company, 1, source="usage:ai")


def test_refund_returns_to_the_lots_and_never_beyond_the_debit(product, company, grant):
    sub = grant(5, bucket="subscription", expires_in=DAY).lot
    top = grant(20, bucket="topup").lot
    debit(product, company, 8)
    partial = services.credits_refund(
        product_id=product.pk, company_id=company.pk, refund_for_job_id="job-1", source_service="svc",
        reason="failed", amount=2,
    )
    # The lot spent last gets back first.
    assert partial.refunded == 2 and [a["lot"] for a in partial.entry.allocations if a["amount"]] == [str(top.pk)]
    with pytest.raises(Conflict) as error:
        services.credits_refund(
            product_id=product.pk, company_id=company.pk, refund_for_job_id="job-1", source_service="svc",
            reason="again", amount=7,
        )
    assert error.value.details["refundable"] == 6
    rest = services.credits_refund(
        product_id=product.pk, company_id=company.pk, refund_for_job_id="job-1", source_service="svc", reason="rest"
    )
    assert rest.refunded == 6
    sub.refresh_from_db(), top.refresh_from_db()
    assert (sub.remaining, top.remaining) == (5, 20)
    # Replay of the same refund.
    assert services.credits_refund(
        product_id=product.pk, company_id=company.pk, refund_for_job_id="job-1", source_service="svc", reason="rest"
    ).replayed


def test_refund_share_of_an_expired_lot_is_not_returned(product, company, grant):
    lot = grant(5, bucket="subscription", expires_in=DAY).lot
    grant(5, bucket="topup")
    debit(product, company, 8)
    CreditLot.objects.filter(pk=lot.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    result = services.credits_refund(
        product_id=product.pk, company_id=company.pk, refund_for_job_id="job-1", source_service="svc", reason="x"
    )
    assert (result.refunded, result.forfeited) == (3, 5)
    assert "expired" in result.entry.description


def test_grant_once_per_reason(product, company, grant):
    first = grant(10, reason="Welcome")
    again = grant(10, reason="Welcome")
    assert not again.created and again.entry.pk == first.entry.pk
    with pytest.raises(Conflict):
        grant(11, reason="Welcome")
    with pytest.raises(BadRequest):
        grant(5, bucket="gold")


def test_expiry_job_writes_expiry_entries(product, company, grant):
    lot = grant(7, expires_in=DAY).lot
    grant(3)
    assert services.credit_lots_expire(now=timezone.now() + 2 * DAY) == 1
    entry = LedgerEntry.objects.get(kind=EntryKind.EXPIRY)
    assert entry.amount == -7 and entry.lot_id == lot.pk
    assert Wallet.objects.get().total == 3


def reserve(product, company, amount, run="run-1", ttl=60, **kwargs):
    return services.reservation_create(
        product_id=product.pk, company_id=company.pk, run_id=run, amount=amount, ttl_seconds=ttl, **kwargs
    )


def test_reservation_holds_usage_settle_release(product, company, wallet):
    held = reserve(product, company, 30)
    assert held.created and held.available == 70
    assert not reserve(product, company, 30).created
    with pytest.raises(Conflict):
        reserve(product, company, 31)
    with pytest.raises(PaymentRequired):
        debit(product, company, 71)
    rid = held.reservation.pk
    used = services.reservation_usage_record(product_id=product.pk, reservation_id=rid, usage_id="u1", amount=10)
    assert used.total_balance_after == 90
    assert services.reservation_usage_record(product_id=product.pk, reservation_id=rid, usage_id="u1", amount=10).replayed
    settled = services.reservation_settle(product_id=product.pk, reservation_id=rid, amount=25)
    r = settled.reservation
    assert (r.status, r.settle_charge, r.released, settled.total_balance_after) == ("settled", 15, 5, 75)
    assert Wallet.objects.get().reserved == 0
    # The run may hold again once settled.
    again = reserve(product, company, 5)
    services.reservation_release(product_id=product.pk, reservation_id=again.reservation.pk)
    assert services.reservation_release(product_id=product.pk, reservation_id=again.reservation.pk).replayed


def test_cost_beyond_the_wallet_becomes_debt_and_blocks_debits(product, company, grant):
    grant(10)
    rid = reserve(product, company, 10).reservation.pk
    services.reservation_settle(product_id=product.pk, reservation_id=rid, amount=15)
    wallet = Wallet.objects.get()
    assert (wallet.debt, wallet.total) == (5, -5)
    with pytest.raises(PaymentRequired):
        debit(product, company, 1)
    # The next credits pay the debt first, on the same entry.
    entry = grant(8).entry
    assert entry.amount == 8 and {"debt": 5, "amount": 5} in entry.allocations
    assert Wallet.objects.get().total == 3


def test_expiry_charges_fallback_only_when_usage_or_flag(product, company, wallet):
    free = reserve(product, company, 10, run="free")
    flagged = reserve(product, company, 10, run="flagged", charge_on_expiry=True)
    used = reserve(product, company, 10, run="used")
    services.reservation_usage_record(product_id=product.pk, reservation_id=used.reservation.pk, usage_id="u", amount=4)
    assert services.reservations_expire(now=timezone.now() + timedelta(minutes=5)) == 3
    kinds = {r.run_id: r.charged for r in Reservation.objects.all()}
    assert kinds == {"free": 0, "flagged": 10, "used": 10}
    assert Wallet.objects.get().total == 80 and Wallet.objects.get().reserved == 0


def test_settle_after_expiry_charges_once_and_returns_the_excess(product, company, wallet):
    held = reserve(product, company, 20, charge_on_expiry=True)
    services.reservations_expire(now=timezone.now() + timedelta(minutes=5))
    assert Wallet.objects.get().total == 80
    settled = services.reservation_settle(product_id=product.pk, reservation_id=held.reservation.pk, amount=12)
    assert settled.total_balance_after == 88
    settled = services.reservation_settle(product_id=product.pk, reservation_id=held.reservation.pk, amount=12)
    assert settled.replayed and Wallet.objects.get().total == 88


def test_transfer_moves_lots_and_debt(product, company, grant):
    from tests.factories.companies import CompanyFactory, ProductLinkFactory

    other = CompanyFactory()
    ProductLinkFactory(product=product, company=other)
    source = grant(10, expires_in=DAY).lot.wallet
    target = grant(4, target=other).lot.wallet
    result = services.wallet_transfer(source=source, target=target, reason="merge", actor="system:test")
    assert result.moved == 10
    assert Wallet.objects.get(pk=target.pk).total == 14 and Wallet.objects.get(pk=source.pk).total == 0
    assert services.wallet_transfer(source=source, target=target, reason="merge", actor="x").moved == 0


@pytest.mark.postgres
def test_ledger_is_append_only_in_the_database(product, company, wallet):
    entry = LedgerEntry.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=1_000)
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM credits_ledgerentry")


def test_verify_finds_drift(product, company, wallet):
    Wallet.objects.filter(pk=wallet.pk).update(balance_promotional=99)
    assert credits_verify()
    Wallet.objects.filter(pk=wallet.pk).update(balance_promotional=100)


def test_summary_hides_expired_lots_before_the_sweep(product, company, grant):
    lot = grant(7, expires_in=DAY).lot
    grant(3)
    CreditLot.objects.filter(pk=lot.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    summary = wallet_summary(wallet=Wallet.objects.get())
    assert summary.total == 3


def test_low_balance_fires_once_per_fall_and_depleted_at_zero(product, company, grant):
    from notifications.models import Event

    wallet = grant(30).lot.wallet
    services.wallet_threshold_set(wallet=wallet, low_balance_threshold=10, reason="test", actor="user:ann")
    debit(product, company, 15, job="a")  # 15 left: above
    debit(product, company, 6, job="b")  # 9: falls below → low_balance
    debit(product, company, 4, job="c")  # 5: still below → nothing
    assert list(Event.objects.values_list("type", flat=True)) == ["credits.low_balance"]
    grant(20)  # 25: back above
    debit(product, company, 20, job="d")  # 5: falls again → low_balance
    debit(product, company, 5, job="e")  # 0 → depleted
    types = list(Event.objects.order_by("created_at").values_list("type", flat=True))
    assert types == ["credits.low_balance", "credits.low_balance", "credits.depleted"]
    assert Event.objects.last().data["companyId"] == str(company.pk)


def test_jobs_run_from_run_job(product, company, grant):
    from django.core.management import call_command

    grant(5, expires_in=timedelta(seconds=1))
    CreditLot.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    call_command("run_job", "expire_credits")
    call_command("run_job", "expire_reservations")
    assert LedgerEntry.objects.filter(kind=EntryKind.EXPIRY).count() == 1


def test_credits_verify_command_exits_1_on_drift(product, company, wallet, capsys):
    from django.core.management import call_command

    call_command("credits_verify")
    Wallet.objects.filter(pk=wallet.pk).update(reserved=3)
    with pytest.raises(SystemExit) as exit_:
        call_command("credits_verify")
    assert exit_.value.code == 1
    Wallet.objects.filter(pk=wallet.pk).update(reserved=0)


def test_the_database_allows_one_fallback_per_reservation(product, company, wallet):
    held = reserve(product, company, 10, charge_on_expiry=True)
    services.reservations_expire(now=timezone.now() + timedelta(minutes=5))
    fallback = LedgerEntry.objects.get(kind=EntryKind.FALLBACK)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            wallet=fallback.wallet, product=product, kind=EntryKind.FALLBACK, amount=-1, balance_after=0,
            reservation=held.reservation,
        )
