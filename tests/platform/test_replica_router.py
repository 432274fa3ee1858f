"""The read-replica router (SPEC §10): reads that only show numbers may go to
the replica; writes, reads inside a transaction and everything outside an
opt-in block stay on the primary. The suite's `replica` alias mirrors the test
database, so these tests see real queries on a second connection."""

from __future__ import annotations

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from companies.models import Company
from config.db_router import read_from_replica
from tests.factories.companies import CompanyFactory

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


@pytest.fixture
def replica_on(settings):
    settings.READ_REPLICA_ENABLED = True


def _queries(alias: str, fn) -> int:
    with CaptureQueriesContext(connections[alias]) as captured:
        fn()
    return len(captured.captured_queries)


def test_reads_stay_on_the_primary_outside_a_replica_block(replica_on):
    CompanyFactory(name="Acme")
    assert _queries("replica", lambda: list(Company.objects.all())) == 0


def test_reads_inside_a_replica_block_go_to_the_replica(replica_on):
    CompanyFactory(name="Acme")

    def read():
        with read_from_replica():
            assert [c.name for c in Company.objects.all()] == ["Acme"]

    assert _queries("replica", read) == 1
    assert _queries("default", read) == 0


def test_writes_and_reads_in_a_transaction_use_the_primary(replica_on):
    def write_then_read():
        with read_from_replica(), transaction.atomic():
            company = CompanyFactory(name="Initech")
            # A read that feeds a write must see the write: primary.
            assert Company.objects.get(pk=company.pk).name == "Initech"

    assert _queries("replica", write_then_read) == 0


def test_without_a_configured_replica_everything_reads_the_primary(settings):
    settings.READ_REPLICA_ENABLED = False
    CompanyFactory(name="Acme")

    def read():
        with read_from_replica():
            list(Company.objects.all())

    assert _queries("replica", read) == 0


def test_admin_change_lists_read_the_replica_and_object_pages_the_primary(replica_on, admin_client):
    company = CompanyFactory(name="Acme")
    changelist = reverse("admin:companies_company_changelist")
    change = reverse("admin:companies_company_change", args=[company.pk])

    def get(url):
        def run():
            response = admin_client.get(url)
            assert response.status_code == 200
            assert b"Acme" in response.content

        return run

    assert _queries("replica", get(changelist)) > 0
    assert _queries("replica", get(change)) == 0


def test_migrations_run_only_on_the_primary():
    from config.db_router import ReplicaRouter

    router = ReplicaRouter()
    assert router.allow_migrate("default", "companies") is True
    assert router.allow_migrate("replica", "companies") is False
    assert router.db_for_write(Company) == "default"
