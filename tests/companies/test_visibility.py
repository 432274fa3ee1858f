"""The one visibility rule (issue 9 item 2): admin forms that act on many
companies check them all in one query, and name those the product cannot see."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from companies import selectors
from entitlements.admin import ApplyTierForm
from entitlements.models import Feature, Tier
from metering.admin import AdjustUsageForm
from tests.factories.companies import CompanyFactory, ProductLinkFactory
from tests.entitlements.conftest import DEMO_CATALOG

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(product):
    import io

    call_command("load_catalog", str(DEMO_CATALOG), stdout=io.StringIO())
    return product


def _companies(product, linked: int, unlinked: int):
    companies = []
    for index in range(linked):
        company = CompanyFactory(name=f"Linked {index}")
        ProductLinkFactory(product=product, company=company)
        companies.append(company)
    companies += [CompanyFactory(name=f"Stranger {index}") for index in range(unlinked)]
    return companies


def _queries_of_clean(form_class, data, companies) -> tuple[int, dict]:
    form = form_class(data, companies=companies)
    with CaptureQueriesContext(connection) as queries:
        form.is_valid()
    return len(queries), form.errors


@pytest.mark.parametrize("form_class", [ApplyTierForm, AdjustUsageForm])
def test_admin_forms_check_every_company_in_one_query(demo, form_class):
    if form_class is ApplyTierForm:
        data = {"tier": str(Tier.objects.get(product=demo, code="pro").pk), "overrides": "{}", "reason": "r"}
    else:
        data = {"feature": str(Feature.objects.get(product=demo, code="ai_credit").pk), "mode": "delta",
                "value": "1", "reason": "r"}
    few, few_errors = _queries_of_clean(form_class, data, _companies(demo, 1, 1))
    many, many_errors = _queries_of_clean(form_class, data, _companies(demo, 10, 10))
    assert few == many
    message = str(many_errors)
    assert "Stranger 9" in message and "Linked 9" not in message


def test_one_message_for_every_company_a_product_cannot_see(product, other_product, foreign_company):
    from config.errors import NotFound

    messages = set()
    for call in (
        lambda: selectors.company_get_visible(product_id=product.pk, company_id=foreign_company.pk),
        lambda: selectors.company_id_get_visible(product_id=product.pk, company_id=foreign_company.pk),
        lambda: selectors.company_id_get_visible(product_id=product.pk, external_org_id="org_foreign"),
        lambda: selectors.company_get_by_external_org(product_id=product.pk, external_org_id="org_foreign"),
        lambda: selectors.company_get_visible(product_id=product.pk, company_id="not-a-uuid"),
    ):
        with pytest.raises(NotFound) as exc:
            call()
        messages.add(exc.value.message)
    assert messages == {selectors.COMPANY_NOT_FOUND_MESSAGE}
