"""The debit in one round trip (credits.services.debits.debit_in_one_round_trip)
is a second form of rules whose home is Python: the spending order and
`take_from_lots` (as `take_from_lots_sql`), and what a debit admits. These
tests run both forms over many cases and check they agree, and that
everything the fast form leaves alone still reaches the transaction path."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.errors import Locked, PaymentRequired
from credits import services
from credits.models import CreditLot, EntryKind, LedgerEntry, Wallet
from credits.services import debits
from credits.services.ledger import spendable_lots, take_from_lots, take_from_lots_sql
from tests.factories.companies import CompanyFactory, ProductLinkFactory
from tests.metering.test_concurrency import run_concurrently

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

BUCKETS = ["subscription", "promotional", "topup"]


def _random_lots(rng: random.Random, wallet: Wallet, now) -> list[CreditLot]:
    # Few distinct expiries and creation times, so that ties (and the
    # bucket and id tie-breaks) come up often.
    expiries = [None, now + timedelta(days=1), now + timedelta(days=2)]
    created = [now - timedelta(days=3), now - timedelta(days=2)]
    lots = []
    for _ in range(rng.randint(1, 6)):
        amount = rng.randint(1, 6)
        lots.append(CreditLot(
            wallet=wallet, bucket=rng.choice(BUCKETS), amount=amount, remaining=rng.randint(0, amount),
            expires_at=rng.choice(expiries), created_at=rng.choice(created), origin="grant", grant_reason="test",
        ))
    return CreditLot.objects.bulk_create(lots)


def test_the_sql_take_agrees_with_take_from_lots_on_many_cases(product, company):
    wallet = Wallet.objects.create(company=company, product=product)
    rng = random.Random(11)
    now = timezone.now()
    for case in range(300):
        with transaction.atomic():
            lots = _random_lots(rng, wallet, now)
            amount = rng.randint(1, sum(lot.remaining for lot in lots) + 2)
            fresh = Wallet.objects.get(pk=wallet.pk)
            take = take_from_lots(spendable_lots(fresh, now=now), amount)
            expected = [(str(lot.pk), -delta) for lot, delta in take.lot_deltas]
            relation = f"(SELECT * FROM {CreditLot._meta.db_table} WHERE wallet_id = %s AND remaining > 0)"
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT id::text, take FROM ({take_from_lots_sql(lots=relation, amount='%s')}) plan "
                    "WHERE take > 0 ORDER BY n",
                    [amount, wallet.pk],  # the amount comes first in the text
                )
                got = [(lot_id, int(part)) for lot_id, part in cursor.fetchall()]
            assert got == expected, (case, amount, [(l.bucket, l.remaining, l.expires_at, l.created_at) for l in lots])
            assert amount - sum(part for _, part in got) == take.shortfall
            transaction.set_rollback(True)


def _twin_wallets(product, grant, rng):
    """Two companies with the same lots (bucket, amount, expiry), granted in the same order."""
    twins = []
    for n in range(2):
        company = CompanyFactory(name=f"Twin {n}", short_id=f"twin-{n}-{rng.random():.9f}")
        ProductLinkFactory(product=product, company=company)
        twins.append(company)
    for _ in range(rng.randint(1, 4)):
        amount, bucket = rng.randint(1, 8), rng.choice(BUCKETS)
        expires_in = rng.choice([None, timedelta(days=1), timedelta(days=2)])
        reason = f"r{rng.random()}"
        for company in twins:
            grant(amount, bucket=bucket, expires_in=expires_in, reason=reason, target=company)
    return twins


def _shape(entry: LedgerEntry) -> tuple:
    lots = {str(lot.pk): (lot.bucket, lot.amount, lot.expires_at is None)
            for lot in CreditLot.objects.filter(wallet=entry.wallet)}
    return (
        entry.kind, entry.amount, entry.balance_after, entry.bucket_balances_after,
        [(lots[item["lot"]], item["bucket"], item["amount"]) for item in entry.allocations],
    )


def test_the_fast_debit_writes_what_the_transaction_path_writes(product, grant, monkeypatch):
    rng = random.Random(7)
    for case in range(40):
        fast_company, slow_company = _twin_wallets(product, grant, rng)
        fast_wallet = Wallet.objects.get(company=fast_company)
        amount = rng.randint(1, fast_wallet.total)
        job = f"job-{case}"
        fast = services.credits_debit(product_id=product.pk, company_id=fast_company.pk, amount=amount,
                                      job_id=job, source_service="svc")
        with monkeypatch.context() as patched:
            patched.setattr(debits, "debit_in_one_round_trip", lambda **kwargs: None)
            slow = services.credits_debit(product_id=product.pk, company_id=slow_company.pk, amount=amount,
                                          job_id=job + "-slow", source_service="svc")
        stored_fast = LedgerEntry.objects.get(pk=fast.entry.pk)
        stored_slow = LedgerEntry.objects.get(pk=slow.entry.pk)
        assert _shape(stored_fast) == _shape(stored_slow), case
        # What the service answered is what it stored.
        assert (fast.entry.balance_after, fast.entry.bucket_balances_after, fast.entry.allocations) == (
            stored_fast.balance_after, stored_fast.bucket_balances_after, stored_fast.allocations)
        assert Wallet.objects.get(company=fast_company).bucket_balances() == Wallet.objects.get(
            company=slow_company).bucket_balances()


def test_a_plain_debit_is_one_statement_message(product, company, grant):
    grant(11)
    # The first debit on a connection also prepares the statements (once per connection).
    services.credits_debit(product_id=product.pk, company_id=company.pk, amount=1, job_id="warm",
                           source_service="svc")
    with CaptureQueriesContext(connection) as queries:
        result = services.credits_debit(product_id=product.pk, company_id=company.pk, amount=3, job_id="j",
                                        source_service="svc")
    assert len(queries.captured_queries) == 1
    assert result.entry.balance_after == 7 and not result.replayed
    by_org = services.credits_debit(product_id=product.pk, external_org_id="org_acme", amount=2, job_id="k",
                                    source_service="svc")
    assert by_org.entry.balance_after == 5 and by_org.entry.wallet_id == result.entry.wallet_id


def test_what_the_fast_debit_leaves_alone_is_decided_by_the_transaction_path(product, company, grant):
    from companies.models import Account, CompanyStatus
    from credits.services import wallet_freeze, wallet_unfreeze

    grant(10, expires_in=timedelta(days=1))
    debit = lambda amount, job: services.credits_debit(  # noqa: E731
        product_id=product.pk, company_id=company.pk, amount=amount, job_id=job, source_service="svc")
    first = debit(4, "a")
    # A replay writes nothing new and answers the first entry.
    again = debit(4, "a")
    assert again.replayed and again.entry.pk == first.entry.pk
    # Not enough: 402, nothing written.
    with pytest.raises(PaymentRequired):
        debit(7, "b")
    wallet_freeze(wallet=Wallet.objects.get(company=company), reason="test", actor="user:test")
    with pytest.raises(Locked):
        debit(1, "c")
    wallet_unfreeze(wallet=Wallet.objects.get(company=company), reason="test", actor="user:test")
    Account.objects.update_or_create(company=company, product=product, defaults={"status": CompanyStatus.SUSPENDED})
    with pytest.raises(Locked):
        debit(1, "d")
    Account.objects.filter(company=company, product=product).update(status=CompanyStatus.ACTIVE)
    # Down to 0: the depletion is the transaction path's (a notification).
    last = debit(6, "e")
    assert last.entry.balance_after == 0
    assert LedgerEntry.objects.filter(kind=EntryKind.USAGE).count() == 2


def test_expired_lots_are_swept_before_a_debit(product, company, grant):
    grant(5, expires_in=timedelta(days=1), reason="soon")
    grant(5, bucket="topup", reason="later")
    CreditLot.objects.filter(bucket="promotional").update(expires_at=timezone.now() - timedelta(seconds=1))
    result = services.credits_debit(product_id=product.pk, company_id=company.pk, amount=2, job_id="j",
                                    source_service="svc")
    assert [item["bucket"] for item in result.entry.allocations] == ["topup"]
    assert LedgerEntry.objects.filter(kind=EntryKind.EXPIRY).count() == 1


@pytest.mark.django_db(transaction=True)
def test_fast_debits_on_one_wallet_admit_exactly_k_of_n(product, company, grant):
    grant(6, bucket="subscription", expires_in=timedelta(days=3))
    grant(4, bucket="topup")
    results = run_concurrently([
        lambda n=n: services.credits_debit(product_id=product.pk, company_id=company.pk, amount=1,
                                           job_id=f"job-{n}", source_service="svc")
        for n in range(30)
    ])
    assert sum(isinstance(r, services.DebitResult) for r in results) == 10
    assert sum(isinstance(r, PaymentRequired) for r in results) == 20
    entries = list(LedgerEntry.objects.filter(kind=EntryKind.USAGE).order_by("created_at", "id"))
    # Stamped under the lock: the ledger's order is the order of the balances.
    assert [e.balance_after for e in entries] == list(range(9, -1, -1))
