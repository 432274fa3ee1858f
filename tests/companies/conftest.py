import pytest

from tests.factories.companies import CompanyFactory, ProductLinkFactory


@pytest.fixture
def linked_company(product):
    """A company linked to `product` as org_acme."""
    company = CompanyFactory(name="Acme Inc", short_id="acme-inc", domain="acme.com")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    return company


@pytest.fixture
def foreign_company(other_product):
    """A company linked only to `other_product`."""
    company = CompanyFactory(name="Foreign GmbH", short_id="foreign-gmbh", domain="foreign.de")
    ProductLinkFactory(product=other_product, company=company, external_org_id="org_foreign")
    return company
