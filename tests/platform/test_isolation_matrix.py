"""The isolation matrix (issue 8, SPEC §2): three products — `chat` and `crm`
in one customer pool, `solo` alone — each with one customer of its own.

For every endpoint that names a company, each key asks about each company it
is not linked to: the answer is the one "Company not found." 404 (a batch
item: its NOT_FOUND error), and nothing changes. The same request about the
key's own company is not that 404, so every request here is one the server
would otherwise serve. Smart link and onboard find a company of the same
pool and never one of another pool."""

from __future__ import annotations

import itertools

import pytest
from rest_framework.test import APIClient

from companies.models import Account, Company, Contact, ProductLink
from companies.selectors import COMPANY_NOT_FOUND_MESSAGE
from companies.services import api_key_create, product_customer_pool_set
from entitlements.catalog import catalog_load
from entitlements.models import FeatureAccess
from metering.models import UsageEvent
from tests.factories.companies import CompanyFactory, ProductFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db

POOLS = {"chat": "shared-pool", "crm": "shared-pool", "solo": "solo"}
DOMAINS = {"chat": "alpha-widgets.com", "crm": "bravo-logistics.com", "solo": "zeta-foods.com"}
NAMES = {"chat": "Alpha Widgets", "crm": "Bravo Logistics", "solo": "Zeta Foods"}

# (method, path, body or query); {id} is a company id, {org} an external org id.
COMPANY_REQUESTS = [
    ("get", "companies/{id}", None),
    ("patch", "companies/{id}", {"name": "Renamed", "metadata": {"taken": True}}),
    ("get", "companies/{id}/contacts", None),
    ("post", "contacts", {"companyId": "{id}", "email": "new@example.com", "isPrimary": True}),
    ("post", "contacts/bulk-upsert", {"companyId": "{id}", "contacts": [{"email": "bulk@example.com"}]}),
    ("post", "links", {"companyId": "{id}", "externalOrgId": "new_org"}),
    ("get", "companies/by-product-link", {"externalOrgId": "{org}"}),
    ("get", "companies/{id}/features", None),
    ("get", "companies/{id}/features/ai_credit", None),
    ("get", "orgs/{org}/features", None),
    ("get", "orgs/{org}/features/ai_credit", None),
    ("post", "tiers/free/apply", {"companyId": "{id}"}),
    ("post", "subscriptions", {"companyId": "{id}", "tierCode": "free"}),
    ("post", "usage/track", {"companyId": "{id}", "featureCode": "ai_credit", "quantity": 1}),
    ("post", "usage/track", {"externalOrgId": "{org}", "featureCode": "ai_credit", "quantity": 1}),
    ("post", "usage/set", {"companyId": "{id}", "featureCode": "ai_credit", "absoluteValue": 1, "reason": "r"}),
    ("post", "usage/adjust", {"companyId": "{id}", "featureCode": "ai_credit", "delta": 1, "reason": "r"}),
    ("get", "usage/history", {"companyId": "{id}"}),
    ("get", "usage/snapshots", {"companyId": "{id}"}),
    ("post", "billing/claim-checkout", {"companyId": "{id}", "checkoutSessionId": "cs_test_1"}),
    ("post", "billing/link-subscription", {"companyId": "{id}", "stripeSubscriptionId": "sub_1"}),
    ("get", "billing/status/{id}", None),
    ("get", "companies/{id}/credits", None),
    ("get", "orgs/{org}/credits", None),
    ("post", "credits/debit", {"companyId": "{id}", "amount": 1, "jobId": "job_1", "sourceService": "svc"}),
    ("post", "credits/refund", {"companyId": "{id}", "refundForJobId": "job_1", "sourceService": "svc", "reason": "r"}),
    ("post", "credits/grants", {"companyId": "{id}", "amount": 1, "reason": "r"}),
    ("get", "credits/ledger", {"companyId": "{id}"}),
    ("post", "credits/reservations", {"companyId": "{id}", "runId": "run_1", "amount": 1, "ttlSeconds": 60}),
]


def _catalog(code: str) -> dict:
    return {
        "product": {"code": code, "name": code.title(), "customerPool": POOLS[code]},
        "features": [{"code": "ai_credit", "name": "AI credits", "kind": "metered", "resetPeriod": "monthly"}],
        "tiers": [{"code": "free", "name": "Free", "default": True, "features": {"ai_credit": {"quantityLimit": 100}}}],
    }


@pytest.fixture
def world(db):
    """{code: (client, product, own company)}."""
    world = {}
    for code in POOLS:
        catalog_load(data=_catalog(code))
    for code in POOLS:
        product = ProductFactory(code=code)
        product_customer_pool_set(product=product, customer_pool=POOLS[code])
        company = CompanyFactory(name=NAMES[code], domain=DOMAINS[code])
        ProductLinkFactory(product=product, company=company, external_org_id=f"org_{code}", account__metadata={code: 1})
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(product=product, name='matrix')[1]}")
        world[code] = (client, product, company)
    return world


def _fill(template, company: Company, org: str):
    if template is None:
        return None
    if isinstance(template, str):
        return template.replace("{id}", str(company.pk)).replace("{org}", org)
    if isinstance(template, dict):
        return {key: _fill(value, company, org) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(value, company, org) for value in template]
    return template


def _call(client, method, path, body, company, org):
    url = "/api/v1/" + _fill(path, company, org)
    data = _fill(body, company, org)
    if method == "get":
        return client.get(url, data or {})
    return getattr(client, method)(url, data, format="json")


def _is_company_not_found(response) -> bool:
    if response.status_code != 404:
        return False
    return response.json()["error"]["message"] == COMPANY_NOT_FOUND_MESSAGE


def _state() -> tuple:
    return (
        sorted(Company.objects.values_list("pk", "name", "domain")),
        sorted(Account.objects.values_list("pk", "metadata")),
        Contact.objects.count(),
        ProductLink.objects.count(),
        FeatureAccess.objects.count(),
        UsageEvent.objects.count(),
    )


PAIRS = [(caller, target) for caller, target in itertools.permutations(POOLS, 2)]


@pytest.mark.parametrize(("caller", "target"), PAIRS, ids=[f"{c}->{t}" for c, t in PAIRS])
def test_every_company_endpoint_is_404_for_a_company_the_key_is_not_linked_to(world, caller, target):
    client, _, own = world[caller]
    _, _, foreign = world[target]
    before = _state()
    for method, path, body in COMPANY_REQUESTS:
        response = _call(client, method, path, body, foreign, f"org_{target}")
        assert _is_company_not_found(response), (method, path, response.status_code, response.content[:300])
        text = response.content.decode()
        assert str(foreign.pk) not in text.replace(f"/{foreign.pk}", "")  # never echoed back as data
    batch = client.post(
        "/api/v1/usage/track-batch",
        {"events": [{"companyId": str(foreign.pk), "featureCode": "ai_credit"}]},
        format="json",
    ).json()
    assert batch["results"][0]["error"]["code"] == "NOT_FOUND"
    assert _state() == before


@pytest.mark.parametrize("caller", list(POOLS))
def test_the_same_requests_about_the_keys_own_company_are_served(world, caller):
    client, _, own = world[caller]
    for method, path, body in COMPANY_REQUESTS:
        response = _call(client, method, path, body, own, f"org_{caller}")
        assert response.status_code != 400, (method, path, response.content[:300])
        assert not _is_company_not_found(response), (method, path, response.content[:300])


@pytest.mark.parametrize(("caller", "target"), PAIRS, ids=[f"{c}->{t}" for c, t in PAIRS])
def test_smart_link_and_onboard_match_only_within_the_pool(world, caller, target):
    client, product, _ = world[caller]
    _, _, foreign = world[target]
    same_pool = POOLS[caller] == POOLS[target]
    hints = {"domain": DOMAINS[target], "companyName": foreign.name}

    body = client.post(
        "/api/v1/companies/smart-link", {"externalOrgId": "smart_1", "hints": hints, "minConfidence": 0}, format="json"
    ).json()
    if same_pool:
        assert (body["status"], body["companyId"]) == ("linked", str(foreign.pk))
    else:
        assert (body["status"], body["companyId"], body["suggestions"]) == ("no_match", None, [])

    onboarded = client.post("/api/v1/onboard", {"externalOrgId": "onboard_1", "hints": hints}, format="json").json()
    assert (onboarded["companyId"] == str(foreign.pk)) is same_pool
    if not same_pool:
        assert not ProductLink.objects.filter(product=product, company=foreign).exists()
