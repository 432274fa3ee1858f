"""The back office as staff use it: a logged-in client on the admin pages."""

import pytest
from django.contrib import admin as django_admin
from django.contrib.auth.models import Group, User
from django.urls import reverse

from companies import admin_extensions
from companies.api_keys import hash_key
from companies.models import ApiKey, Company, Contact, ProductLink
from companies.roles import BILLING_ADMIN, SUPPORT
from tests.factories.companies import CompanyFactory, ContactFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def customers(product):
    acme = CompanyFactory(name="Acme Inc", short_id="acme-inc", domain="acme.com")
    ProductLinkFactory(product=product, company=acme, external_org_id="org_secret_42")
    ContactFactory(company=acme, email="jane.doe@acme.com", is_primary=True)
    globex = CompanyFactory(name="Globex", short_id="globex", domain="globex.de")
    ContactFactory(company=globex, email="hank@globex.de")
    return acme, globex


def _staff(role: str) -> User:
    user = User.objects.create_user(username=role.lower().replace(" ", "_"), password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def _changelist(client, **params):
    response = client.get(reverse("admin:companies_company_changelist"), params)
    assert response.status_code == 200
    return [c.name for c in response.context["cl"].result_list]


def _change_form_data(response) -> dict:
    """The POST body a browser would send for an unchanged change page."""
    data = {}
    form = response.context["adminform"].form
    for name, field in form.fields.items():
        value = form[name].value()
        if value is not None:
            data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name in formset.management_form.fields:
            data[f"{formset.prefix}-{name}"] = formset.management_form[name].value()
        for sub in formset.forms:
            for name in sub.fields:
                value = sub[name].value()
                if value not in (None, False):
                    data[sub.add_prefix(name)] = value
    return data


class TestCompanyAdmin:
    def test_search(self, admin_client, customers):
        assert _changelist(admin_client, q="org_secret_42") == ["Acme Inc"]
        assert _changelist(admin_client, q="hank@globex.de") == ["Globex"]
        assert _changelist(admin_client, q="acme.com") == ["Acme Inc"]
        assert _changelist(admin_client, q="globex") == ["Globex"]
        assert _changelist(admin_client, q="acme-inc") == ["Acme Inc"]

    def test_filters(self, admin_client, customers, product):
        assert _changelist(admin_client, product=str(product.pk)) == ["Acme Inc"]
        # Status is an account's (per product; a new account is a prospect): Globex, linked to no product, has none.
        assert sorted(_changelist(admin_client, status="prospect")) == ["Acme Inc"]

    def test_change_page_shows_inlines_and_registered_panels(self, admin_client, customers, monkeypatch):
        acme, _ = customers
        monkeypatch.setattr(
            admin_extensions, "COMPANY_PANELS", [lambda request, company: f"<b id='panel'>{company.short_id}</b>"]
        )
        response = admin_client.get(reverse("admin:companies_company_change", args=[acme.pk]))
        html = response.content.decode()
        assert response.status_code == 200
        assert "jane.doe@acme.com" in html and "org_secret_42" in html
        assert "<b id='panel'>acme-inc</b>" in html

    def test_a_broken_panel_does_not_break_the_page(self, admin_client, customers, monkeypatch):
        def broken(request, company):
            raise RuntimeError("boom")

        monkeypatch.setattr(admin_extensions, "COMPANY_PANELS", [broken])
        response = admin_client.get(reverse("admin:companies_company_change", args=[customers[0].pk]))
        assert response.status_code == 200 and "could not be shown" in response.content.decode()

    def test_registered_inlines_and_actions_are_used(self, rf, admin_user, monkeypatch):
        class ExtraInline(django_admin.TabularInline):
            model = ProductLink

        def extra_action(modeladmin, request, queryset):
            pass

        monkeypatch.setattr(admin_extensions, "COMPANY_INLINES", [ExtraInline])
        monkeypatch.setattr(admin_extensions, "COMPANY_ACTIONS", [extra_action])
        model_admin = django_admin.site._registry[Company]
        request = rf.get("/admin/companies/company/")
        request.user = admin_user
        assert ExtraInline in model_admin.get_inlines(request, None)
        assert "extra_action" in model_admin.get_actions(request)

    def test_add_normalises_domain_and_derives_short_id(self, admin_client, customers):
        response = admin_client.post(
            reverse("admin:companies_company_add"),
            {
                "name": "Acme Inc",
                "short_id": "",
                "domain": "https://www.Acme-Two.com/x",
                "status": "active",
                "mrr": "0",
                "metadata": "{}",
                "created_at_0": "2024-01-01",
                "created_at_1": "00:00:00",
                **_inline_data(admin_client, reverse("admin:companies_company_add")),
            },
        )
        assert response.status_code == 302, response.context["adminform"].form.errors
        company = Company.objects.get(domain="acme-two.com")
        assert company.short_id == "acme-inc-2"

    def test_invalid_domain_is_a_form_error(self, admin_client):
        response = admin_client.post(
            reverse("admin:companies_company_add"),
            {"name": "X", "domain": "not a domain", "status": "active", "mrr": "0", "metadata": "{}",
             "created_at_0": "2024-01-01", "created_at_1": "00:00:00", **_inline_data(admin_client, reverse("admin:companies_company_add"))},
        )
        assert response.status_code == 200
        assert "domain" in response.context["adminform"].form.errors

    def test_inline_primary_change_demotes_the_previous_primary(self, admin_client, customers):
        acme, _ = customers
        jane = acme.contacts.get()
        data = _company_form(admin_client, acme)
        del data["contacts-0-is_primary"]  # staff untick Jane and tick the new contact
        data.update(
            {
                "contacts-TOTAL_FORMS": "2",
                "contacts-0-id": str(jane.pk),
                "contacts-0-email": "jane.doe@acme.com",
                "contacts-0-name": "Jane",
                "contacts-1-company": str(acme.pk),
                "contacts-1-email": "NEW.Boss@Acme.com",
                "contacts-1-name": "Boss",
                "contacts-1-is_primary": "on",
            }
        )
        response = admin_client.post(reverse("admin:companies_company_change", args=[acme.pk]), data)
        assert response.status_code == 302, _form_errors(response)
        assert Contact.objects.get(company=acme, is_primary=True).email == "new.boss@acme.com"
        assert Contact.objects.filter(company=acme).count() == 2

    def test_inline_refuses_two_primaries(self, admin_client, customers):
        acme, _ = customers
        jane = acme.contacts.get()
        data = _company_form(admin_client, acme)
        data.update(
            {
                "contacts-TOTAL_FORMS": "2",
                "contacts-0-id": str(jane.pk),
                "contacts-0-email": "jane.doe@acme.com",
                "contacts-0-is_primary": "on",
                "contacts-1-company": str(acme.pk),
                "contacts-1-email": "other@acme.com",
                "contacts-1-is_primary": "on",
            }
        )
        response = admin_client.post(reverse("admin:companies_company_change", args=[acme.pk]), data)
        assert response.status_code == 200
        assert Contact.objects.filter(company=acme).count() == 1

    def test_contact_admin_makes_primary_through_the_service(self, admin_client, customers):
        acme, _ = customers
        response = admin_client.post(
            reverse("admin:companies_contact_add"),
            {"company": str(acme.pk), "email": "CFO@acme.com", "name": "", "role": "CFO", "is_primary": "on",
             "avatar_url": "", "metadata": "{}"},
        )
        assert response.status_code == 302, _form_errors(response)
        assert Contact.objects.get(company=acme, is_primary=True).email == "cfo@acme.com"


def _inline_data(client, url) -> dict:
    """The management forms and current rows of every inline on the page,
    including the inlines other apps register, as the browser would post them."""
    response = client.get(url)
    data = {}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        count = str(formset.initial_form_count())
        data[f"{formset.prefix}-TOTAL_FORMS"] = data[f"{formset.prefix}-INITIAL_FORMS"] = count
        for form in formset.initial_forms:
            for name in form.fields:
                value = form[name].value()
                if value not in (None, False, ""):
                    data[form.add_prefix(name)] = str(value)
    return data


def _company_form(client, company) -> dict:
    return {
        **_inline_data(client, reverse("admin:companies_company_change", args=[company.pk])),
        "name": company.name,
        "short_id": company.short_id,
        "domain": company.domain,
        "created_at_0": company.created_at.strftime("%Y-%m-%d"),
        "created_at_1": company.created_at.strftime("%H:%M:%S"),
    }


def _form_errors(response):
    context = getattr(response, "context", None)
    if not context:
        return response.content[:500]
    return [context["adminform"].form.errors, *[(f.formset.errors, f.formset.non_form_errors()) for f in context.get("inline_admin_formsets", [])]]


class TestApiKeyAdmin:
    def test_creating_a_key_shows_it_once_and_stores_only_the_hash(self, admin_client, product):
        response = admin_client.post(
            reverse("admin:companies_apikey_add"), {"product": str(product.pk), "name": "Chat backend"}
        )
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"]
        raw_key = response.context["raw_key"]
        assert raw_key.startswith("os_sk_") and raw_key in response.content.decode()
        key = ApiKey.objects.get(name="Chat backend")
        assert key.key_hash == hash_key(raw_key) and key.prefix == raw_key[:10]
        assert raw_key not in str(ApiKey.objects.values())
        for url in (
            reverse("admin:companies_apikey_changelist"),
            reverse("admin:companies_apikey_change", args=[key.pk]),
            reverse("admin:companies_product_change", args=[product.pk]),
        ):
            html = admin_client.get(url).content.decode()
            assert raw_key not in html and key.key_hash not in html
        # ... and it works.
        assert (
            admin_client.get("/api/v1/companies/by-product-link", {"externalOrgId": "x"},
                             HTTP_AUTHORIZATION=f"Bearer {raw_key}").status_code
            == 404
        )

    def test_add_form_asks_product_and_name_only(self, admin_client):
        form = admin_client.get(reverse("admin:companies_apikey_add")).context["adminform"].form
        assert list(form.fields) == ["product", "name"]

    def test_revoke_action(self, admin_client, api, django_capture_on_commit_callbacks):
        key = ApiKey.objects.get()
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                reverse("admin:companies_apikey_changelist"),
                {"action": "revoke_selected", "_selected_action": [str(key.pk)]},
            )
        assert response.status_code == 302
        key.refresh_from_db()
        assert key.revoked_at is not None
        assert api.get("/api/v1/companies/by-product-link", {"externalOrgId": "x"}).status_code == 401

    def test_keys_cannot_be_deleted(self, admin_client, api):
        key = ApiKey.objects.get()
        assert admin_client.get(reverse("admin:companies_apikey_delete", args=[key.pk])).status_code == 403


class TestRoles:
    def test_support(self, client, customers):
        acme, _ = customers
        client.force_login(_staff(SUPPORT))
        assert client.get(reverse("admin:companies_company_changelist")).status_code == 200
        assert client.get(reverse("admin:companies_company_change", args=[acme.pk])).status_code == 200
        assert client.get(reverse("admin:companies_company_delete", args=[acme.pk])).status_code == 403
        assert client.post(reverse("admin:companies_company_delete", args=[acme.pk]), {"post": "yes"}).status_code == 403
        assert client.get(reverse("admin:companies_apikey_changelist")).status_code == 403
        assert client.get(reverse("admin:companies_apikey_add")).status_code == 403
        assert Company.objects.filter(pk=acme.pk).exists()
        # Support edits contacts.
        assert client.get(reverse("admin:companies_contact_add")).status_code == 200

    def test_support_saves_inlines_but_not_company_fields(self, client, customers):
        acme, _ = customers
        client.force_login(_staff(SUPPORT))
        url = reverse("admin:companies_company_change", args=[acme.pk])
        page = client.get(url)
        data = _change_form_data(page)
        assert "name" not in data  # the company's own fields are read-only for Support
        contacts = next(f for f in page.context["inline_admin_formsets"] if f.formset.model is Contact).formset
        data[f"{contacts.prefix}-0-name"] = "Jane Support-Edited"
        data["name"] = "Renamed by Support"
        response = client.post(url, data)
        assert response.status_code == 302, response.context and response.context.get("errors")
        acme.refresh_from_db()
        assert acme.name == "Acme Inc"
        assert Contact.objects.get(email="jane.doe@acme.com").name == "Jane Support-Edited"

    def test_billing_admin(self, client, customers):
        acme, _ = customers
        client.force_login(_staff(BILLING_ADMIN))
        assert client.get(reverse("admin:companies_apikey_changelist")).status_code == 200
        assert client.get(reverse("admin:companies_apikey_add")).status_code == 200
        assert client.get(reverse("admin:companies_company_delete", args=[acme.pk])).status_code == 403


def test_changelist_queries_do_not_grow_with_rows(admin_client, product, django_assert_max_num_queries):
    for i in range(30):
        company = CompanyFactory()
        ProductLinkFactory(product=product, company=company)
        ContactFactory(company=company)
    # 15 + the country and industry filters' choices (one DISTINCT query each)
    # + the segment filter's choices (insights).
    with django_assert_max_num_queries(18):
        response = admin_client.get(reverse("admin:companies_company_changelist"), {"q": "company"})
    assert response.status_code == 200


def test_company_list_filters_by_tier_and_subscription_status(admin_client, product):
    from billing.models import Subscription
    from entitlements.services import tier_apply
    from companies.actors import Actor
    from tests.factories.entitlements import FeatureFactory, TierFactory, TierFeatureFactory

    pro = TierFactory(product=product, code="pro")
    TierFeatureFactory(tier=pro, feature=FeatureFactory(product=product, code="sso"))
    on_pro = CompanyFactory(name="On Pro")
    ProductLinkFactory(product=product, company=on_pro)
    tier_apply(company=on_pro, tier=pro, actor=Actor.system("test"))
    CompanyFactory(name="No Tier")
    Subscription.objects.create(
        company=on_pro, product=product, stripe_subscription_id="sub_1", stripe_customer_id="cus_1", status="active"
    )
    assert _changelist(admin_client, tier=str(pro.pk)) == ["On Pro"]
    assert _changelist(admin_client, subscription_status="active") == ["On Pro"]
    assert _changelist(admin_client, subscription_status="none") == ["No Tier"]
