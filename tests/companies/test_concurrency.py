"""Race-safety claims of SPEC §3, with real threads on PostgreSQL."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from rest_framework.test import APIClient

from companies import services
from companies.models import Company, Contact, ProductLink
from tests.factories.companies import CompanyFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8


def _in_threads(work, count=THREADS):
    barrier = threading.Barrier(count)

    def run(index):
        barrier.wait()
        try:
            return work(index)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_create_for_one_external_org_id(api):
    def create(index):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api.raw_key}")
        response = client.post(
            "/api/v1/companies",
            {"name": "Acme Inc", "externalOrgId": "org_race", "contactEmail": f"u{index}@acme.com"},
            format="json",
        )
        return response.status_code

    statuses = _in_threads(create)
    assert sorted(statuses) == [201] + [409] * (THREADS - 1)
    assert ProductLink.objects.filter(external_org_id="org_race").count() == 1
    # The losers' companies and contacts were rolled back with them.
    assert Company.objects.count() == 1
    assert Contact.objects.count() == 1


def test_concurrent_creates_get_distinct_short_ids(product):
    def create(index):
        return services.company_create(product_id=product.pk, name="Same Name", external_org_id=f"org_{index}").short_id

    short_ids = _in_threads(create)
    assert len(set(short_ids)) == THREADS
    assert "same-name" in short_ids


def test_concurrent_primary_contacts_leave_exactly_one(product):
    company = CompanyFactory()

    def make_primary(index):
        contact, _ = services.contact_upsert(company=company, email=f"p{index}@acme.com", is_primary=True)
        return contact.pk

    _in_threads(make_primary)
    assert Contact.objects.filter(company=company).count() == THREADS
    assert Contact.objects.filter(company=company, is_primary=True).count() == 1


def test_concurrent_upserts_of_one_email_make_one_contact(product):
    company = CompanyFactory()

    def upsert(index):
        return services.contact_upsert(company=company, email="Same@Acme.com", name=f"N{index}")[1]

    created = _in_threads(upsert)
    assert created.count(True) == 1
    assert Contact.objects.filter(company=company).count() == 1
