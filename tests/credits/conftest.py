"""Fixtures of the credits tests: a company of the `api` fixture's product,
its wallet, and the books checked after every test (`credits_verify`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from credits.services import credits_grant
from credits.verify import credits_verify
from tests.factories.companies import CompanyFactory, ProductLinkFactory


@pytest.fixture(autouse=True)
def books_balance(request):
    """After every credits test: ledger sum = lots sum = balance, for every
    wallet (the database is set up here, so it is still there at teardown)."""
    marker = request.node.get_closest_marker("django_db")
    request.getfixturevalue("transactional_db" if marker and marker.kwargs.get("transaction") else "db")
    yield
    assert credits_verify() == {}


@pytest.fixture
def company(product):
    company = CompanyFactory(name="Acme Inc", short_id="acme-inc")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    return company


@pytest.fixture
def grant(product, company):
    """grant(amount, bucket="promotional", reason=…, expires_in=timedelta|None) → GrantResult."""
    counter = iter(range(1, 10_000))

    def make(amount, *, bucket="promotional", reason=None, expires_in=None, expires_at=None, target=None):
        return credits_grant(
            company_id=(target or company).pk,
            product_id=product.pk,
            amount=amount,
            bucket=bucket,
            reason=reason or f"test grant {next(counter)}",
            expires_at=expires_at or (timezone.now() + expires_in if expires_in else None),
            actor="user:test",
        )

    return make


@pytest.fixture
def wallet(grant):
    return grant(100).lot.wallet


DAY = timedelta(days=1)
