"""Health scores (SPEC §8): the stored result and its selector."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError

from companies.models import Account
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
