"""Segments in the admin (SPEC §9): Billing admin defines them with criteria
errors shown next to the field by path, Support only looks, and the company
list filters by segment."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, User
from django.urls import reverse

from companies.roles import BILLING_ADMIN, SUPPORT
from insights.models import Segment, SegmentMembership
from insights.services import segment_sync
from tests.factories.companies import CompanyFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db

ADD_URL = "admin:insights_segment_add"


def staff(client, role: str):
    user = User.objects.create_user(username=f"staff-{role}".replace(" ", "-"), password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return client


def form(product, criteria, **extra) -> dict:
    return {"product": str(product.pk), "slug": "eu", "name": "EU customers", "type": "demographic",
            "description": "", "criteria": json.dumps(criteria), "parent": "", **extra}


def test_criteria_errors_are_shown_next_to_the_field_by_path(client, product):
    staff(client, BILLING_ADMIN)
    bad = {"all": [{"field": "country", "op": "eq", "value": "DE"}, {"field": "country", "op": "like", "value": "x"}]}
    response = client.post(reverse(ADD_URL), form(product, bad, slug="Not A Slug"))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["criteria"] == ['criteria.all[1].op: unknown operator "like" (one of eq, ne, gt, gte, lt, lte, in, contains, exists)']
    assert "slug" in errors
    assert 'criteria.all[1].op: unknown operator' in response.content.decode()
    assert not Segment.objects.exists()

    not_json = client.post(reverse(ADD_URL), {**form(product, {}), "criteria": "{all: "})
    assert "criteria" in not_json.context["adminform"].form.errors


def test_billing_admin_adds_a_segment_with_cleaned_criteria(client, product):
    staff(client, BILLING_ADMIN)
    criteria = {"all": [{"field": "country", "op": "in", "value": ["de", "fr"]}]}
    response = client.post(reverse(ADD_URL), form(product, criteria))
    assert response.status_code == 302, response.context["adminform"].form.errors
    segment = Segment.objects.get(slug="eu")
    assert segment.criteria == {"all": [{"field": "country", "op": "in", "value": ["DE", "FR"]}]}

    # a parent cycle is refused on the parent field
    child = Segment.objects.create(product=product, slug="eu-big", name="EU big", criteria={"all": []}, parent=segment)
    change = client.post(
        reverse("admin:insights_segment_change", args=[segment.pk]),
        form(product, criteria, parent=str(child.pk)),
    )
    assert "makes a cycle" in change.context["adminform"].form.errors["parent"][0]


def test_support_sees_segments_but_cannot_change_them(client, product):
    segment = Segment.objects.create(product=product, slug="all", name="All", criteria={"all": []})
    staff(client, SUPPORT)
    assert client.get(reverse("admin:insights_segment_changelist")).status_code == 200
    assert client.get(reverse("admin:insights_segment_change", args=[segment.pk])).status_code == 200
    assert client.get(reverse(ADD_URL)).status_code == 403
    response = client.post(reverse("admin:insights_segment_change", args=[segment.pk]), form(product, {"all": []}))
    assert response.status_code == 403


def test_company_list_filters_by_segment_and_sync_now(client, product):
    inside = CompanyFactory(name="Inside GmbH", country="DE")
    outside = CompanyFactory(name="Outside Inc", country="US")
    for company in (inside, outside):
        ProductLinkFactory(product=product, company=company)
    segment = Segment.objects.create(
        product=product, slug="de", name="Germany", criteria={"all": [{"field": "country", "op": "eq", "value": "DE"}]}
    )
    staff(client, BILLING_ADMIN)
    response = client.post(
        reverse("admin:insights_segment_changelist"),
        {"action": "sync_now", ACTION_CHECKBOX_NAME: [str(segment.pk)]},
        follow=True,
    )
    assert "Synced 1 segment(s): de: 1 (+1 −0)" in response.content.decode()
    assert list(SegmentMembership.objects.values_list("company__name", flat=True)) == ["Inside GmbH"]

    listing = client.get(reverse("admin:companies_company_changelist"), {"segment": str(segment.pk)})
    names = [company.name for company in listing.context["cl"].result_list]
    assert names == ["Inside GmbH"]
    page = client.get(reverse("admin:companies_company_change", args=[inside.pk])).content.decode()
    assert "chat · Germany" in page


def test_support_cannot_sync(client, product):
    segment = Segment.objects.create(product=product, slug="all", name="All", criteria={"all": []})
    segment_sync(segment_id=segment.pk)
    staff(client, SUPPORT)
    response = client.get(reverse("admin:insights_segment_changelist"))
    assert "sync_now" not in response.content.decode()
