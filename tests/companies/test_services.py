from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from companies import selectors, services
from companies.models import Account, Company, Contact, ProductLink
from config.errors import BadRequest, Conflict, NotFound
from tests.factories.companies import CompanyFactory, ContactFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db


def _create(product, external_org_id="org_1", **kwargs):
    kwargs.setdefault("name", "Acme Inc")
    return services.company_create(product_id=product.pk, external_org_id=external_org_id, **kwargs)


class TestCompanyCreate:
    def test_creates_company_link_and_primary_contact(self, product):
        company = _create(
            product,
            domain="https://www.ACME.com/about",
            external_user_id="user_1",
            contact_email="Jane@ACME.com",
            contact_name="Jane",
            metadata={"plan": "x"},
        )
        assert company.short_id == "acme-inc"
        assert company.domain == "acme.com"
        assert company.customer_pool == product.customer_pool == "chat"
        account = Account.objects.get(company=company)
        assert (account.product, account.metadata) == (product, {"plan": "x"})
        link = ProductLink.objects.get(company=company)
        assert (link.product_id, link.external_org_id, link.external_user_id) == (product.pk, "org_1", "user_1")
        contact = Contact.objects.get(company=company)
        assert (contact.email, contact.name, contact.is_primary) == ("jane@acme.com", "Jane", True)

    def test_short_ids_are_unique_and_sequential(self, product):
        ids = [_create(product, f"org_{i}").short_id for i in range(3)]
        assert ids == ["acme-inc", "acme-inc-2", "acme-inc-3"]

    def test_short_id_of_a_name_without_letters(self, product):
        assert _create(product, name="!!!").short_id == "company"

    def test_short_id_skips_a_taken_suffix(self, product):
        CompanyFactory(customer_pool="chat", short_id="acme-inc")
        CompanyFactory(customer_pool="chat", short_id="acme-inc-7")
        assert _create(product).short_id == "acme-inc-8"

    def test_backfilled_created_at(self, product):
        when = datetime(2023, 6, 1, tzinfo=UTC)
        assert _create(product, created_at=when).created_at == when

    def test_future_created_at_is_refused(self, product):
        with pytest.raises(BadRequest) as exc:
            _create(product, created_at=timezone.now() + timedelta(days=1))
        assert "createdAt" in exc.value.details["fields"]

    def test_conflict_when_external_org_id_is_linked_and_nothing_written(self, product):
        first = _create(product)
        with pytest.raises(Conflict) as exc:
            _create(product, name="Other", contact_email="x@other.com")
        assert exc.value.details["companyId"] == str(first.pk)
        assert Company.objects.count() == 1
        assert Contact.objects.count() == 0

    def test_same_external_org_id_in_another_product_is_fine(self, product, other_product):
        _create(product)
        _create(other_product)
        assert ProductLink.objects.count() == 2

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"name": "  "}, "name"),
            ({"domain": "not a domain"}, "domain"),
            ({"contact_email": "nope"}, "contactEmail"),
            ({"external_org_id": " "}, "externalOrgId"),
        ],
    )
    def test_invalid_input_writes_nothing(self, product, kwargs, field):
        with pytest.raises(BadRequest) as exc:
            _create(product, **kwargs)
        assert field in exc.value.details["fields"]
        assert not Company.objects.exists()


class TestCompanyUpdate:
    def test_updates_given_fields_and_merges_metadata(self, product):
        company = _create(product, metadata={"a": 1, "b": 2})
        updated = services.company_update(
            company=company, product_id=product.pk, name="Acme Corp", domain="www.acme.io", metadata={"b": None, "c": 3}
        )
        assert (updated.name, updated.domain, updated.short_id) == ("Acme Corp", "acme.io", "acme-inc")
        assert Account.objects.get(company=company, product=product).metadata == {"a": 1, "c": 3}

    def test_domain_can_be_cleared(self, product):
        company = _create(product, domain="acme.com")
        assert services.company_update(company=company, domain=None).domain == ""

    def test_invalid_domain(self, product):
        company = _create(product)
        with pytest.raises(BadRequest):
            services.company_update(company=company, domain="http://")


class TestContacts:
    def test_upsert_creates_then_updates_by_lower_case_email(self, linked_company):
        contact, created = services.contact_upsert(company=linked_company, email="Bob@Acme.com", name="Bob")
        assert created and contact.email == "bob@acme.com" and not contact.is_primary
        again, created = services.contact_upsert(
            company=linked_company, email="BOB@acme.com", role="CTO", metadata={"slack": "U1"}
        )
        assert not created and again.pk == contact.pk
        again.refresh_from_db()
        assert (again.name, again.role, again.metadata) == ("Bob", "CTO", {"slack": "U1"})

    def test_making_a_contact_primary_demotes_the_previous_one(self, linked_company):
        first, _ = services.contact_upsert(company=linked_company, email="a@acme.com", is_primary=True)
        second, _ = services.contact_upsert(company=linked_company, email="b@acme.com", is_primary=True)
        first.refresh_from_db()
        assert not first.is_primary and second.is_primary
        assert Contact.objects.filter(company=linked_company, is_primary=True).count() == 1

    def test_contact_save_demotes_too(self, linked_company):
        old = ContactFactory(company=linked_company, email="old@acme.com", is_primary=True)
        new = Contact(company=linked_company, email="NEW@acme.com", is_primary=True)
        services.contact_save(contact=new)
        old.refresh_from_db()
        assert new.email == "new@acme.com" and new.is_primary and not old.is_primary

    def test_contact_save_refuses_a_taken_email(self, linked_company):
        ContactFactory(company=linked_company, email="a@acme.com")
        with pytest.raises(BadRequest):
            services.contact_save(contact=Contact(company=linked_company, email="A@acme.com"))

    def test_bulk_upsert(self, linked_company, django_assert_max_num_queries):
        ContactFactory(company=linked_company, email="old@acme.com", name="Old", is_primary=True)
        items = [{"email": "old@acme.com", "role": "CEO"}] + [
            {"email": f"p{i}@acme.com", "name": f"P{i}"} for i in range(50)
        ]
        items[10]["is_primary"] = True
        with django_assert_max_num_queries(12):
            result = services.contacts_bulk_upsert(company=linked_company, contacts=items)
        assert (result.created, result.updated) == (50, 1)
        assert [c.email for c, _ in result.contacts] == [i["email"] for i in items]
        assert [is_new for _, is_new in result.contacts][:2] == [False, True]
        old = Contact.objects.get(email="old@acme.com")
        assert (old.name, old.role, old.is_primary) == ("Old", "CEO", False)
        assert Contact.objects.get(is_primary=True).email == "p9@acme.com"

    def test_bulk_upsert_is_all_or_nothing(self, linked_company):
        items = [{"email": "ok@acme.com"}, {"email": "bad"}, {"email": "OK@acme.com"}]
        with pytest.raises(BadRequest) as exc:
            services.contacts_bulk_upsert(company=linked_company, contacts=items)
        assert set(exc.value.details["fields"]) == {"contacts.1.email", "contacts.2.email"}
        assert not Contact.objects.exists()

    def test_bulk_upsert_refuses_two_primaries_and_too_many(self, linked_company):
        with pytest.raises(BadRequest) as exc:
            services.contacts_bulk_upsert(
                company=linked_company,
                contacts=[{"email": "a@x.com", "is_primary": True}, {"email": "b@x.com", "is_primary": True}],
            )
        assert "contacts.1.isPrimary" in exc.value.details["fields"]
        with pytest.raises(BadRequest):
            services.contacts_bulk_upsert(
                company=linked_company, contacts=[{"email": f"{i}@x.com"} for i in range(1001)]
            )
        assert not Contact.objects.exists()


class TestLinks:
    def test_create_is_idempotent_for_the_same_company(self, product, linked_company):
        link, created = services.product_link_create(
            product_id=product.pk, company=linked_company, external_org_id="store_2", label="Store 2"
        )
        assert created and link.label == "Store 2"
        again, created = services.product_link_create(
            product_id=product.pk, company=linked_company, external_org_id="store_2"
        )
        assert not created and again.pk == link.pk

    def test_conflict_when_linked_to_another_company(self, product, linked_company):
        other = CompanyFactory()
        with pytest.raises(Conflict):
            services.product_link_create(product_id=product.pk, company=other, external_org_id="org_acme")

    def test_reset_only_touches_this_product(self, product, other_product):
        only_here = CompanyFactory()
        shared = CompanyFactory()
        elsewhere = CompanyFactory()
        ProductLinkFactory(product=product, company=only_here, account__mrr=500)
        ProductLinkFactory(product=product, company=only_here)
        ProductLinkFactory(product=product, company=shared, account__mrr=700)
        ProductLinkFactory(product=other_product, company=shared, account__mrr=700)
        ProductLinkFactory(product=other_product, company=elsewhere, account__mrr=900)
        for company in (only_here, shared, elsewhere):
            ContactFactory(company=company)

        result = services.product_links_reset(product_id=product.pk, delete_contacts=True, reset_mrr=True)

        # MRR is per account: this product's accounts are reset, nobody else's.
        assert (result.links_deleted, result.contacts_deleted, result.mrr_reset) == (3, 1, 2)
        assert not ProductLink.objects.filter(product=product).exists()
        assert ProductLink.objects.filter(product=other_product).count() == 2
        assert not Contact.objects.filter(company=only_here).exists()
        assert Contact.objects.filter(company=shared).exists()
        assert sorted(Account.objects.filter(product=product).values_list("mrr", flat=True)) == [0, 0]
        assert sorted(Account.objects.filter(product=other_product).values_list("mrr", flat=True)) == [700, 900]
        assert Account.objects.count() == 4
        assert Company.objects.count() == 3

    def test_reset_without_options_keeps_contacts_and_mrr(self, product, linked_company):
        ContactFactory(company=linked_company)
        result = services.product_links_reset(product_id=product.pk)
        assert (result.links_deleted, result.contacts_deleted, result.mrr_reset) == (1, 0, 0)
        assert Contact.objects.count() == 1


class TestSelectors:
    def test_company_get_visible(self, product, linked_company, foreign_company):
        assert selectors.company_get_visible(product_id=product.pk, company_id=linked_company.pk) == linked_company
        for company_id in (foreign_company.pk, "not-a-uuid", None):
            with pytest.raises(NotFound):
                selectors.company_get_visible(product_id=product.pk, company_id=company_id)

    def test_company_get_by_external_org(self, product, other_product, linked_company):
        company, link = selectors.company_get_by_external_org(product_id=product.pk, external_org_id="org_acme")
        assert company == linked_company and link.external_org_id == "org_acme"
        with pytest.raises(NotFound):
            selectors.company_get_by_external_org(product_id=other_product.pk, external_org_id="org_acme")

    def test_contact_list_primary_first(self, linked_company):
        ContactFactory(company=linked_company, email="a@acme.com")
        ContactFactory(company=linked_company, email="z@acme.com", is_primary=True)
        assert [c.email for c in selectors.contact_list(company=linked_company)] == ["z@acme.com", "a@acme.com"]
        assert [c.email for c in selectors.contact_list(company=linked_company, primary_only=True)] == ["z@acme.com"]
