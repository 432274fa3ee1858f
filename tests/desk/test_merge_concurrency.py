"""Merges under real concurrency (threads with their own PostgreSQL
connections): A→B racing B→A, and a merge racing usage tracks and credit
debits on the duplicate. Books and usage must be exact afterwards."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.db import connection

from companies.actors import Actor
from companies.models import Company
from config.errors import ApplicationError, Conflict
from credits.models import LedgerEntry, Wallet
from credits.services import credits_grant
from credits.services.debits import credits_debit
from desk.models import CompanyMerge
from desk.services import company_merge
from entitlements.models import Tier
from entitlements.services import tier_apply
from metering.models import UsageEvent, UsageMeter
from metering.services import usage_track
from tests.factories.companies import CompanyFactory, ProductLinkFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

STAFF = Actor.system("tests")


def run_concurrently(calls, threads=8):
    start = threading.Event()

    def run(call):
        try:
            start.wait(timeout=10)
            return call()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(run, call) for call in calls]
        start.set()
        return [future.result() for future in futures]


@pytest.fixture
def catalog(product):
    from tests.entitlements.conftest import DEMO_CATALOG

    call_command("load_catalog", str(DEMO_CATALOG), stdout=io.StringIO())
    return product


def _pair(product, n):
    companies = []
    for side in ("a", "b"):
        company = CompanyFactory(name=f"Pair {n} {side}")
        ProductLinkFactory(product=product, company=company, external_org_id=f"org_{n}_{side}")
        companies.append(company)
    return companies


def test_a_into_b_racing_b_into_a_one_wins_the_other_is_409(product):
    for n in range(4):
        a, b = _pair(product, n)
        results = run_concurrently(
            [
                lambda a=a, b=b: company_merge(source=a, target=b, reason="race", actor=STAFF, product_id=product.pk),
                lambda a=a, b=b: company_merge(source=b, target=a, reason="race", actor=STAFF, product_id=product.pk),
            ],
            threads=2,
        )
        errors = [r for r in results if isinstance(r, Exception)]
        wins = [r for r in results if not isinstance(r, Exception)]
        assert len(wins) == 1 and len(errors) == 1, results
        assert isinstance(errors[0], Conflict), errors
        winner = wins[0]
        assert Company.objects.get(pk=winner.merged_company_id).merged_into_id == winner.kept_company_id
        assert Company.objects.get(pk=winner.kept_company_id).merged_into_id is None
    assert CompanyMerge.objects.count() == 4


def test_the_same_merge_twice_at_once_is_one_merge_and_one_replay(product):
    a, b = _pair(product, 9)
    results = run_concurrently(
        [lambda: company_merge(source=a, target=b, reason="twice", actor=STAFF) for _ in range(2)], threads=2
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r.replayed for r in results) == [False, True]
    assert results[0].moved == results[1].moved
    assert CompanyMerge.objects.count() == 1


def test_merge_racing_tracks_and_debits_on_the_duplicate_loses_nothing(product, catalog):
    kept, duplicate = _pair(product, 0)
    free = Tier.objects.get(product=product, code="free")
    for company in (kept, duplicate):
        tier_apply(company=company, tier=free, actor=STAFF, reason="test")
    credits_grant(company_id=duplicate.pk, product_id=product.pk, amount=100, bucket="promotional", reason="t", actor="t")
    credits_grant(company_id=kept.pk, product_id=product.pk, amount=10, bucket="promotional", reason="t", actor="t")
    usage_track(product_id=product.pk, company_id=kept.pk, feature_code="messages", quantity=5)
    usage_track(product_id=product.pk, company_id=duplicate.pk, feature_code="messages", quantity=7)

    def track(n):
        return lambda: ("track", usage_track(
            product_id=product.pk, company_id=duplicate.pk, feature_code="messages", quantity=1, idempotency_key=f"t-{n}"
        ))

    def debit(n):
        return lambda: ("debit", credits_debit(
            product_id=product.pk, company_id=duplicate.pk, amount=1, job_id=f"job-{n}", source_service="tests",
            idempotency_key=f"d-{n}",
        ))

    calls = [track(n) for n in range(12)] + [debit(n) for n in range(12)]
    calls.insert(6, lambda: ("merge", company_merge(source=duplicate, target=kept, reason="race", actor=STAFF)))
    results = run_concurrently(calls)

    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, ApplicationError)]
    assert not unexpected, unexpected
    assert any(not isinstance(r, Exception) and r[0] == "merge" for r in results), results
    tracked = sum(1 for r in results if not isinstance(r, Exception) and r[0] == "track")
    debited = sum(1 for r in results if not isinstance(r, Exception) and r[0] == "debit")
    # usage: every track that answered success is on the kept company's meter, nothing on the tombstone
    meter_total = sum(UsageMeter.objects.filter(company=kept, feature__code="messages").values_list("value", flat=True))
    assert meter_total == 5 + 7 + tracked
    assert sum(UsageMeter.objects.filter(company=duplicate).values_list("value", flat=True)) == 0
    assert UsageEvent.objects.filter(company=kept, feature__code="messages").count() == 2 + tracked
    assert not UsageEvent.objects.filter(company=duplicate).exists()
    # credits: the books balance and every successful debit was paid exactly once
    wallets = Wallet.objects.filter(product=product)
    balance = sum(w.balance_subscription + w.balance_promotional + w.balance_topup - w.debt for w in wallets)
    assert balance == 110 - debited
    assert sum(LedgerEntry.objects.filter(product=product).values_list("amount", flat=True)) == balance
    assert Wallet.objects.get(company=duplicate).balance_promotional == 0
