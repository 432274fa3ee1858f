"""The customer profile and billing fields (SPEC §3), the derived account
fields, and how links say they were made."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from companies import profile
from companies.models import Account, Company, LinkType, ProductLink
from companies.services import account_activity_touch, account_purchases_set, company_create, profile_clean
from companies.services.profile import account_activity_forget
from config.errors import BadRequest
from tests.companies.test_admin import _company_form, _form_errors
from tests.factories.companies import CompanyFactory, ProductLinkFactory

pytestmark = pytest.mark.django_db

PROFILE = {
    "country": "DE",
    "industry": "Retail",
    "size": "mid_market",
    "timezone": "Europe/Berlin",
    "locale": "de-DE",
    "currency": "eur",
    "billingEmail": "Billing@Acme.de",
    "billingAddress": {"line1": "Hauptstr. 1", "city": "Berlin", "postalCode": "10115", "country": "DE"},
    "taxId": "DE123456789",
}


def _create(api, **extra):
    body = {"name": "Acme GmbH", "externalOrgId": "org_acme", **extra}
    return api.post("/api/v1/companies", body, format="json")


def _fields(response):
    assert response.status_code == 400, response.content
    return response.json()["error"]["details"]["fields"]


class TestApi:
    def test_create_and_read_round_trip(self, api):
        response = _create(api, **PROFILE)
        assert response.status_code == 201, response.content
        body = response.json()
        for key in ("country", "industry", "size", "timezone", "locale", "currency", "taxId"):
            assert body[key] == PROFILE[key]
        assert body["billingEmail"] == "billing@acme.de"
        assert body["billingAddress"] == {
            "line1": "Hauptstr. 1", "line2": None, "city": "Berlin", "postalCode": "10115", "state": None,
            "country": "DE",
        }
        assert (body["firstPurchaseAt"], body["lifetimeValue"], body["lastActivityAt"]) == (None, 0, None)
        assert api.get(f"/api/v1/companies/{body['id']}").json() == body

    def test_patch_changes_and_clears(self, api):
        company_id = _create(api, **PROFILE).json()["id"]
        response = api.patch(
            f"/api/v1/companies/{company_id}",
            {"country": "AT", "timezone": None, "industry": "", "billingAddress": None, "size": "enterprise"},
            format="json",
        )
        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["country"], body["timezone"], body["industry"], body["billingAddress"], body["size"]) == (
            "AT", None, None, None, "enterprise"
        )
        assert body["locale"] == "de-DE" and body["taxId"] == "DE123456789"  # untouched

    @pytest.mark.parametrize(
        "field, value",
        [
            ("country", "XX"),
            ("country", "de"),
            ("currency", "xyz"),
            ("timezone", "Mars/Olympus"),
            ("locale", "english"),
            ("size", "huge"),
            ("billingEmail", "not-an-email"),
            ("country", 49),
        ],
    )
    def test_bad_values_are_400_and_change_nothing(self, api, field, value):
        company_id = _create(api, **PROFILE).json()["id"]
        assert field in _fields(_create(api, externalOrgId="org_2", **{field: value}))
        assert field in _fields(api.patch(f"/api/v1/companies/{company_id}", {field: value}, format="json"))
        assert Company.objects.count() == 1
        assert api.get(f"/api/v1/companies/{company_id}").json()["country"] == "DE"

    def test_bad_billing_address_parts(self, api):
        fields = _fields(_create(api, billingAddress={"country": "ZZ", "city": "x" * 101}))
        assert set(fields) == {"billingAddress.country", "billingAddress.city"}
        assert set(_fields(_create(api, billingAddress={"zip": "1"}))) == {"billingAddress.zip"}

    def test_derived_fields_are_not_writable(self, api):
        assert "lifetimeValue" in _fields(_create(api, lifetimeValue=5))

    def test_billing_fields_are_per_product(self, api, other_api, product, other_product):
        other_product.customer_pool = product.customer_pool
        other_product.save()
        company_id = _create(api, **PROFILE).json()["id"]
        company = Company.objects.get(pk=company_id)
        ProductLinkFactory(product=other_product, company=company, external_org_id="theirs")
        theirs = other_api.get(f"/api/v1/companies/{company_id}").json()
        assert theirs["country"] == "DE"  # the profile is shared in the pool
        assert theirs["billingEmail"] is None and theirs["taxId"] is None and theirs["billingAddress"] is None

    def test_schema_lists_the_codes(self, api):
        schema = api.get("/api/v1/schema/?format=json").json()
        fields = schema["components"]["schemas"]["CompanyCreateInputRequest"]["properties"]
        assert "DE" in str(fields["country"]) and "Europe/Berlin" in str(fields["timezone"])


class TestValidatorModule:
    def test_one_error_names_every_field(self):
        with pytest.raises(BadRequest) as exc:
            profile_clean({"country": "XX", "currency": "usdd", "timezone": "Nowhere"})
        assert set(exc.value.details["fields"]) == {"country", "currency", "timezone"}

    def test_data_comes_from_iso_and_iana(self):
        assert "DE" in profile.COUNTRY_CODES and "eur" in profile.CURRENCY_CODES
        assert "America/Argentina/Buenos_Aires" in profile.TIME_ZONES
        assert profile.locale_error("es-419") is None and profile.locale_error("EN") is not None


class TestDerivedFields:
    def test_purchases_are_set_whole_so_replays_do_not_double(self, linked_company, product):
        first = timezone.now() - timedelta(days=30)
        for _ in range(2):
            account_purchases_set(
                company_id=linked_company.pk, product_id=product.pk, lifetime_value=12_300, first_purchase_at=first
            )
        account = Account.objects.get(company=linked_company, product=product)
        assert (account.lifetime_value, account.first_purchase_at) == (12_300, first)

    def test_activity_is_written_at_most_once_a_minute_and_never_backwards(self, linked_company, product):
        account_activity_forget()
        now = timezone.now()
        assert account_activity_touch(company_id=linked_company.pk, product_id=product.pk, at=now)
        assert not account_activity_touch(
            company_id=linked_company.pk, product_id=product.pk, at=now + timedelta(seconds=5)
        )
        account_activity_forget()
        assert not account_activity_touch(
            company_id=linked_company.pk, product_id=product.pk, at=now - timedelta(hours=1)
        )
        assert Account.objects.get(company=linked_company, product=product).last_activity_at == now

    def test_tracking_sets_last_activity(self, api, product):
        from tests.factories.entitlements import FeatureAccessFactory, MeteredFeatureFactory

        account_activity_forget()
        company_id = _create(api).json()["id"]
        feature = MeteredFeatureFactory(product=product, code="ai_credit")
        FeatureAccessFactory(company_id=company_id, feature=feature, quantity_limit=None)
        response = api.post(
            "/api/v1/usage/track", {"companyId": company_id, "featureCode": "ai_credit", "quantity": 1}, format="json"
        )
        assert response.status_code in (200, 201), response.content
        assert api.get(f"/api/v1/companies/{company_id}").json()["lastActivityAt"] is not None


class TestLinkTypes:
    def test_post_companies_makes_a_created_link(self, api):
        _create(api)
        body = api.get("/api/v1/companies/by-product-link?externalOrgId=org_acme").json()
        assert (body["linkType"], body["confidence"]) == ("created", None)

    def test_onboarding_without_a_match_makes_a_created_link(self, product):
        company = company_create(product_id=product.pk, name="New Co", external_org_id="org_new")
        assert company.links.get().link_type == LinkType.CREATED

    def test_smart_link_records_its_confidence(self, api, product, linked_company):
        response = api.post(
            "/api/v1/companies/smart-link",
            {"externalOrgId": "org_smart", "hints": {"domain": "acme.com"}},
            format="json",
        )
        assert response.json()["status"] == "linked", response.content
        link = ProductLink.objects.get(product=product, external_org_id="org_smart")
        assert (link.link_type, link.confidence) == (LinkType.SMART, 95)
        body = api.get("/api/v1/companies/by-product-link?externalOrgId=org_smart").json()
        assert (body["linkType"], body["confidence"]) == ("smart", 95)

    def test_post_links_makes_a_manual_link_with_metadata(self, api, linked_company):
        response = api.post(
            "/api/v1/links",
            {"companyId": str(linked_company.pk), "externalOrgId": "store_1", "metadata": {"store": "Berlin"}},
            format="json",
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["linkType"], body["confidence"], body["metadata"]) == ("manual", None, {"store": "Berlin"})
        assert body["updatedAt"].endswith("Z")

    def test_admin_makes_a_manual_link(self, admin_client, product, linked_company):
        response = admin_client.post(
            reverse("admin:companies_productlink_add"),
            {"company": linked_company.pk, "product": product.pk, "external_org_id": "staff_1", "metadata": "{}"},
        )
        assert response.status_code == 302, _form_errors(response)
        assert ProductLink.objects.get(external_org_id="staff_1").link_type == LinkType.MANUAL


class TestAdmin:
    def test_profile_fieldset_round_trip_and_validation(self, admin_client, product):
        company = CompanyFactory(name="Acme", short_id="acme")
        ProductLinkFactory(product=product, company=company, external_org_id="org_a")
        url = reverse("admin:companies_company_change", args=[company.pk])
        data = {**_company_form(admin_client, company), "country": "ZZ", "timezone": "Europe/Berlin"}
        response = admin_client.post(url, data)
        assert response.status_code == 200 and "country" in response.context["adminform"].form.errors
        data.update(country="FR", size="smb", locale="fr-FR")
        response = admin_client.post(url, data)
        assert response.status_code == 302, _form_errors(response)
        company.refresh_from_db()
        assert (company.country, company.size, company.timezone, company.locale) == (
            "FR", "smb", "Europe/Berlin", "fr-FR"
        )
        changelist = admin_client.get(reverse("admin:companies_company_changelist"), {"country": "FR"})
        assert [c.name for c in changelist.context["cl"].result_list] == ["Acme"]
