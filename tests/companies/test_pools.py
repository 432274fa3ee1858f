"""Customer pools and accounts (SPEC §2, issue 8 item 1).

Products share customers only within their pool: smart link and onboard
never find a company of another pool; within a pool the company record is
shared and everything per product lives on the company's account."""

import pytest
from django.core.management import call_command
from django.urls import reverse

from companies import services
from companies.models import Account, Company, Contact, Product, ProductLink
from config.errors import BadRequest, Conflict
from entitlements.catalog import CatalogError, catalog_dump, catalog_load
from tests.factories.companies import CompanyFactory, ContactFactory, ProductFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db


def _pool(pool: str, *products: Product) -> None:
    for product in products:
        services.product_customer_pool_set(product=product, customer_pool=pool)


def _post(client, path, body):
    return client.post(f"/api/v1/{path}", body, format="json")


@pytest.fixture
def theirs(other_product):
    """A company only the other product (a pool of its own: crm) knows."""
    company = CompanyFactory(name="Müller Logistik GmbH", short_id="muller-logistik", domain="mueller-logistik.de")
    ProductLinkFactory(product=other_product, company=company, external_org_id="crm_1", account__metadata={"crm": 1})
    ContactFactory(company=company, email="ceo@mueller-logistik.de", is_primary=True)
    return company


# --- The takeover of issue 8, item 1 -------------------------------------------------------


class TestAnotherPoolIsInvisible:
    @pytest.mark.parametrize(
        "hints",
        [
            {"domain": "mueller-logistik.de"},
            {"emails": ["someone@mueller-logistik.de"]},
            {"companyName": "Müller Logistik"},
            {"companyName": "Muller Logistik", "domain": "https://www.mueller-logistik.de/"},
        ],
    )
    def test_smart_link_finds_nothing_no_suggestion_no_hint(self, api, product, theirs, hints):
        body = _post(api, "companies/smart-link", {"externalOrgId": "chat_1", "hints": hints, "minConfidence": 0}).json()
        assert body == {
            "status": "no_match", "companyId": None, "customerName": None, "confidence": None, "matchedBy": None,
            "suggestions": [],
        }
        assert not ProductLink.objects.filter(product=product).exists()

    def test_onboard_creates_a_company_of_its_own(self, api, product, theirs):
        response = _post(api, "onboard", {"externalOrgId": "chat_1", "hints": {"domain": "mueller-logistik.de"}})
        assert response.status_code in (200, 201), response.content
        assert response.json()["companyId"] != str(theirs.pk)
        assert not ProductLink.objects.filter(product=product, company=theirs).exists()

    def test_cannot_read_rename_or_edit_their_company(self, api, theirs):
        for response in (
            api.get(f"/api/v1/companies/{theirs.pk}"),
            api.patch(f"/api/v1/companies/{theirs.pk}", {"name": "Mine", "metadata": {"crm": None}}, format="json"),
            api.get(f"/api/v1/companies/{theirs.pk}/contacts"),
            _post(api, "contacts", {"companyId": str(theirs.pk), "email": "ceo@mueller-logistik.de", "name": "X"}),
            api.get(f"/api/v1/billing/status/{theirs.pk}"),
        ):
            assert response.status_code == 404, response.content
            assert str(theirs.pk) not in response.content.decode()
        theirs.refresh_from_db()
        assert theirs.name == "Müller Logistik GmbH"
        assert Account.objects.get(company=theirs).metadata == {"crm": 1}
        assert Contact.objects.get(company=theirs).name != "X"

    def test_link_to_a_company_of_another_pool_is_refused(self, product, theirs):
        with pytest.raises(BadRequest) as exc:
            services.product_link_create(product_id=product.pk, company=theirs, external_org_id="chat_9")
        assert "another customer pool" in str(exc.value.message)
        assert not ProductLink.objects.filter(product=product).exists()


# --- Sharing within a pool -------------------------------------------------------------------


class TestSharedPool:
    @pytest.fixture(autouse=True)
    def shared(self, product, other_product):
        _pool("acme-customers", product, other_product)

    def test_smart_link_finds_the_pools_company_and_makes_an_account(self, api, product, theirs):
        body = _post(api, "companies/smart-link", {"externalOrgId": "chat_1", "hints": {"domain": "mueller-logistik.de"}}).json()
        assert (body["status"], body["companyId"]) == ("linked", str(theirs.pk))
        account = Account.objects.get(company=theirs, product=product)
        assert account.metadata == {}  # the other product's metadata stays its own

    def test_metadata_status_mrr_are_per_product_and_contacts_shared(self, api, other_api, product, other_product, theirs):
        services.product_link_create(product_id=product.pk, company=theirs, external_org_id="chat_1")
        Account.objects.filter(company=theirs, product=other_product).update(mrr=9900, status="at_risk")

        mine = api.patch(f"/api/v1/companies/{theirs.pk}", {"metadata": {"chat": True}}, format="json").json()
        assert (mine["metadata"], mine["mrr"], mine["status"]) == ({"chat": True}, 0, "prospect")
        crm = other_api.get(f"/api/v1/companies/{theirs.pk}").json()
        assert (crm["metadata"], crm["mrr"], crm["status"]) == ({"crm": 1}, 9900, "at_risk")
        # The shared record: a rename by one product is seen by the other.
        api.patch(f"/api/v1/companies/{theirs.pk}", {"name": "Müller Logistik AG"}, format="json")
        assert other_api.get(f"/api/v1/companies/{theirs.pk}").json()["name"] == "Müller Logistik AG"
        contacts = api.get(f"/api/v1/companies/{theirs.pk}/contacts").json()
        assert "ceo@mueller-logistik.de" in str(contacts)

    def test_list_shows_each_products_own_account(self, api, other_api, product, other_product, theirs):
        services.product_link_create(product_id=product.pk, company=theirs, external_org_id="chat_1")
        services.account_update(company=theirs, product_id=product.pk, metadata={"chat": 1})
        [mine] = api.get("/api/v1/companies").json()["data"]
        [crm] = other_api.get("/api/v1/companies").json()["data"]
        assert (mine["metadata"], crm["metadata"]) == ({"chat": 1}, {"crm": 1})

    def test_short_id_is_unique_within_the_pool(self, product, other_product):
        first = services.company_create(product_id=product.pk, name="Acme Inc", external_org_id="a")
        second = services.company_create(product_id=other_product.pk, name="Acme Inc", external_org_id="b")
        assert (first.short_id, second.short_id) == ("acme-inc", "acme-inc-2")


def test_short_ids_repeat_across_pools(product, other_product):
    mine = services.company_create(product_id=product.pk, name="Acme Inc", external_org_id="a")
    theirs = services.company_create(product_id=other_product.pk, name="Acme Inc", external_org_id="b")
    assert (mine.short_id, theirs.short_id) == ("acme-inc", "acme-inc")
    assert (mine.customer_pool, theirs.customer_pool) == ("chat", "crm")


def test_a_product_is_its_own_pool_by_default(db):
    assert ProductFactory(code="desk").customer_pool == "desk"


# --- Accents (SPEC §3: "Muller" finds "Müller") -------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "hint"),
    [("Müller GmbH", "Muller"), ("Muller GmbH", "Müller"), ("Société Générale", "Societe Generale"),
     ("Straße Bau AG", "Strasse Bau"), ("Ødegaard AS", "Odegaard")],
)
def test_smart_link_ignores_accents_on_both_sides(product, stored, hint):
    company = CompanyFactory(customer_pool="chat", name=stored, domain="")
    result = services.company_smart_link(product_id=product.pk, external_org_id="org_1", company_name=hint)
    assert (result.status, result.company, result.confidence) == ("linked", company, 80)


def test_a_near_spelling_is_still_a_candidate(product):
    company = CompanyFactory(customer_pool="chat", name="Müller GmbH", domain="")
    result = services.company_smart_link(product_id=product.pk, external_org_id="org_1", company_name="Mueller")
    assert result.status in ("linked", "suggestions")
    assert company in [result.company, *(c.company for c in result.suggestions)]


def test_match_name_follows_renames(product):
    company = services.company_create(product_id=product.pk, name="Zürich Versicherung", external_org_id="z")
    assert company.match_name == "zurich versicherung"
    services.company_update(company=company, name="Zürich Insurance Ltd")
    company.refresh_from_db()
    assert company.match_name == "zurich insurance"


# --- The pool setting: catalog file and admin ---------------------------------------------


def _catalog(pool=None):
    product = {"code": "chat", "name": "Chat App"}
    if pool is not None:
        product["customerPool"] = pool
    return {"product": product, "features": [], "tiers": []}


def test_catalog_sets_and_dumps_the_pool(product):
    catalog_load(data=_catalog("acme-customers"))
    product.refresh_from_db()
    assert product.customer_pool == "acme-customers"
    assert catalog_dump(product=product)["product"]["customerPool"] == "acme-customers"
    assert not catalog_load(data=catalog_dump(product=product)).changed
    # Absent: the pool is kept.
    catalog_load(data=_catalog())
    product.refresh_from_db()
    assert product.customer_pool == "acme-customers"


@pytest.mark.parametrize("pool", ["Not A Slug", "", 7])
def test_catalog_refuses_a_bad_pool(product, pool):
    with pytest.raises(CatalogError) as exc:
        catalog_load(data=_catalog(pool))
    assert "product.customerPool" in str(exc.value)


def test_a_pool_change_moves_the_products_own_companies(product, linked_company):
    _pool("acme-customers", product)
    linked_company.refresh_from_db()
    assert linked_company.customer_pool == "acme-customers"


def test_a_pool_change_is_refused_while_another_product_shares_a_company(product, other_product, linked_company):
    _pool("acme-customers", product, other_product)
    ProductLinkFactory(product=other_product, company=linked_company)
    with pytest.raises(Conflict):
        services.product_customer_pool_set(product=product, customer_pool="elsewhere")
    with pytest.raises(CatalogError):
        catalog_load(data=_catalog("elsewhere"))
    product.refresh_from_db()
    assert product.customer_pool == "acme-customers"


def test_billing_admin_sets_the_pool_in_the_admin(client, product):
    from django.contrib.auth.models import Group, User

    from companies.roles import BILLING_ADMIN

    user = User.objects.create_user(username="billing", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=BILLING_ADMIN))
    client.force_login(user)
    response = client.post(
        reverse("admin:companies_product_change", args=[product.pk]),
        {"code": "chat", "name": "Chat App", "customer_pool": "acme-customers",
         "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0"},
    )
    assert response.status_code == 302, response.content[:2000]
    product.refresh_from_db()
    assert product.customer_pool == "acme-customers"


# --- Data migration: today's metadata/status/mrr go to every linked product's account -----------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_migration_moves_company_values_into_accounts():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("companies", "0005_customer_pools_accounts")]
    after = [("companies", "0007_company_fields_moved_to_accounts")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    OldProduct, OldCompany = old.get_model("companies", "Product"), old.get_model("companies", "Company")
    OldLink = old.get_model("companies", "ProductLink")
    chat = OldProduct.objects.create(code="chat", name="Chat")
    crm = OldProduct.objects.create(code="crm", name="CRM")
    shared = OldCompany.objects.create(
        short_id="acme", name="Ácme Inc", status="at_risk", mrr=4900, metadata={"plan": "pro"}
    )
    alone = OldCompany.objects.create(short_id="solo", name="Solo", status="churned", mrr=0, metadata={})
    OldLink.objects.create(product=chat, company=shared, external_org_id="a")
    OldLink.objects.create(product=crm, company=shared, external_org_id="b")
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps
        Account_ = new.get_model("companies", "Account")
        Company_ = new.get_model("companies", "Company")
        rows = sorted(Account_.objects.values_list("product__code", "status", "mrr", "metadata"))
        assert rows == [("chat", "at_risk", 4900, {"plan": "pro"}), ("crm", "at_risk", 4900, {"plan": "pro"})]
        moved = Company_.objects.get(pk=shared.pk)
        assert (moved.customer_pool, moved.match_name) == ("chat", "acme")
        assert Company_.objects.get(pk=alone.pk).customer_pool == ""
        assert set(new.get_model("companies", "Product").objects.values_list("customer_pool", flat=True)) == {
            "chat", "crm"
        }
    finally:
        call_command("migrate", verbosity=0)


def test_admin_refuses_a_short_id_taken_in_the_pool_and_allows_it_in_another(admin_client, product, other_product, linked_company):
    def add(pool):
        form = admin_client.get(reverse("admin:companies_company_add")).context["inline_admin_formsets"]
        data = {"name": "Acme Two", "customer_pool": pool, "short_id": "acme-inc", "domain": "",
                "created_at_0": "2024-01-01", "created_at_1": "00:00:00"}
        for inline in form:
            management = inline.formset.management_form
            for name in management.fields:
                data[management.add_prefix(name)] = management[name].value() or 0
        return admin_client.post(reverse("admin:companies_company_add"), data)

    assert add("chat").status_code == 200  # linked_company is acme-inc in pool chat
    assert add("crm").status_code == 302
    assert sorted(Company.objects.filter(short_id="acme-inc").values_list("customer_pool", flat=True)) == ["chat", "crm"]


def test_admin_refuses_a_link_to_a_company_of_another_pool(admin_client, product, theirs):
    response = admin_client.post(
        reverse("admin:companies_productlink_add"),
        {"company": str(theirs.pk), "product": str(product.pk), "external_org_id": "chat_x"},
    )
    assert response.status_code == 200
    assert "another customer pool" in response.content.decode()
    assert not ProductLink.objects.filter(product=product).exists()


def test_admin_link_makes_the_account(admin_client, product, other_product):
    company = CompanyFactory(customer_pool="chat")
    response = admin_client.post(
        reverse("admin:companies_productlink_add"),
        {"company": str(company.pk), "product": str(product.pk), "external_org_id": "chat_y"},
    )
    assert response.status_code == 302, response.content[:1000]
    assert Account.objects.filter(company=company, product=product).exists()
