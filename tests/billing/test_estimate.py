"""POST /billing/estimate (SPEC §8): the statement's arithmetic on a given usage."""

from __future__ import annotations

import pytest

from tests.billing.test_invoices import subscribed  # noqa: F401 - fixture
from tests.billing.test_purchases import carded  # noqa: F401 - fixture
from tests.billing.test_statements import billed, statement  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

URL = "/api/v1/billing/estimate"
LINE = ("featureCode", "quantity", "includedQuantity", "billableQuantity", "unitAmount", "amount")


def estimate(api, company, usage):
    return api.post(URL, {"companyId": str(company.pk), "usage": usage}, format="json")


def test_estimate_equals_the_statement_on_the_same_usage(api, company, billed):  # noqa: F811
    [statement_line] = statement(api, company).json()["usage"]
    response = estimate(api, company, {"ai_credit": statement_line["quantity"]})
    assert response.status_code == 200, response.content
    body = response.json()
    [line] = body["lines"]
    assert tuple(line[k] for k in LINE) == tuple(statement_line[k] for k in LINE) == (
        "ai_credit", 1500, 1000, 500, 1, 500
    )
    assert (body["currency"], body["total"]) == ("eur", 500)
    within = estimate(api, company, {"ai_credit": 900}).json()
    assert (within["lines"][0]["billableQuantity"], within["total"]) == (0, 0)


@pytest.mark.parametrize(
    "usage, field",
    [
        ({"ai_credit": -1}, "usage.ai_credit"),
        ({"ai_credit": 1.5}, "usage.ai_credit"),
        ({"ai_credit": "10"}, "usage.ai_credit"),
        ({}, "usage"),
    ],
)
def test_bad_quantities_are_400(api, company, billed, usage, field):  # noqa: F811
    response = estimate(api, company, usage)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]["fields"]


def test_unknown_feature_is_404_and_other_companies_are_invisible(api, other_api, company, billed):  # noqa: F811
    response = estimate(api, company, {"nope": 1})
    assert response.status_code == 404 and "usage.nope" in response.json()["error"]["details"]["fields"]
    assert estimate(other_api, company, {"ai_credit": 1}).status_code == 404
