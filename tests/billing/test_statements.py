"""Usage statements (SPEC §8): base fees from overlapping invoices (not
prorated), billable usage per meter period × the mirrored unit price, the
credits columns adding up, HTML / CSV, email, the admin action's role check."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from billing.models import Invoice
from billing.services.prices import prices_sync_all
from companies.models import Contact
from credits.services import credits_debit, credits_grant, credits_refund
from tests.billing.test_admin_money_actions import client_with_role, run_action
from tests.billing.test_invoices import deliver_invoice_events, subscribed  # noqa: F401 - fixture
from tests.billing.test_purchases import buy, carded  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

URL = "/api/v1/billing/statement"


def today():
    return timezone.now().date()


def statement(api, company, start=None, end=None, **extra):
    start, end = start or today() - timedelta(days=1), end or today() + timedelta(days=1)
    return api.get(URL, {"companyId": str(company.pk), "from": start.isoformat(), "to": end.isoformat(), **extra})


@pytest.fixture
def billed(api, company, product, fake_stripe, subscribed):  # noqa: F811
    prices_sync_all()
    deliver_invoice_events(api, fake_stripe, "invoice.paid")
    # 1,500 AI credits used this period; the pro tier includes 1,000 → 500 billable at 1 cent.
    response = api.post("/api/v1/usage/track", {"companyId": str(company.pk), "featureCode": "ai_credit",
                                                "quantity": 1500}, format="json")
    assert response.status_code == 200, response.json()
    return subscribed


class TestArithmetic:
    def test_base_fee_usage_and_total(self, api, company, billed):
        body = statement(api, company).json()

        assert body["currency"] == "eur"
        assert [(f["tierCode"], f["amount"]) for f in body["baseFees"]] == [("pro", 4900)]
        [usage] = body["usage"]
        assert (usage["featureCode"], usage["quantity"], usage["includedQuantity"], usage["billableQuantity"],
                usage["unitAmount"], usage["amount"]) == ("ai_credit", 1500, 1000, 500, 1, 500)
        assert body["total"] == 4900 + 500
        assert [i["total"] for i in body["invoices"]] == [4900]

    def test_credits_columns_add_up(self, api, company, product, fake_stripe, billed, carded):  # noqa: F811
        buy(api, company)  # purchased 100
        credits_grant(company_id=company.pk, product_id=product.pk, amount=50, reason="welcome")
        credits_debit(product_id=product.pk, company_id=company.pk, amount=80, job_id="j1", source_service="s")
        credits_refund(product_id=product.pk, company_id=company.pk, refund_for_job_id="j1", source_service="s",
                       reason="oops", amount=30)
        intent = fake_stripe.payment_intents[-1]["id"]
        fake_stripe.refund(intent, 500)
        from billing.services.purchases import purchase_sync_by_intent_id
        purchase_sync_by_intent_id(intent)  # takes back 50

        c = statement(api, company).json()["credits"]

        assert (c["purchased"], c["used"], c["refunded"], c["adjusted"]) == (100, 80, 30, -50)
        assert c["granted"] == 500 + 50  # the paid cycle's subscription credits + the grant
        assert c["opening"] + c["purchased"] + c["granted"] - c["used"] + c["refunded"] - c["expired"] \
            + c["adjusted"] == c["closing"] == 550
        # A period before any of it: all zero.
        earlier = statement(api, company, today() - timedelta(days=60), today() - timedelta(days=40)).json()
        assert earlier["credits"]["closing"] == 0 and earlier["baseFees"] == [] and earlier["usage"] == []

    def test_html_and_csv_in_currency_units(self, api, company, billed):
        html = statement(api, company, output="html")
        csv = statement(api, company, output="csv")

        assert html["Content-Type"].startswith("text/html") and "49.00 EUR" in html.content.decode()
        assert csv["Content-Type"].startswith("text/csv")
        text = csv.content.decode()
        assert "base_fee,pro," in text and ",49.00,EUR" in text and "total,,,,,,,,54.00,EUR" in text

    def test_bad_range_is_400(self, api, company, billed):
        assert statement(api, company, today(), today() - timedelta(days=1)).status_code == 400
        assert api.get(URL, {"companyId": str(company.pk), "from": "nope", "to": "2026-01-01"}).status_code == 400


class TestSend:
    def test_emailed_to_the_primary_contact_with_csv(self, api, company, billed):
        Contact.objects.create(company=company, email="cfo@acme.com", is_primary=True)
        response = api.post(f"{URL}/send", {"companyId": str(company.pk), "from": today().isoformat(),
                                            "to": today().isoformat()}, format="json")

        assert response.status_code == 200 and response.json()["email"] == "cfo@acme.com"
        [message] = mail.outbox
        assert message.to == ["cfo@acme.com"]
        assert message.attachments[0][0].endswith(".csv") and "text/html" in message.alternatives[0][1]

    def test_no_contact_and_no_email_is_409(self, api, company, billed):
        # Valid input; the company has nobody to send it to yet (its state, not the call).
        response = api.post(f"{URL}/send", {"companyId": str(company.pk), "from": today().isoformat(),
                                            "to": today().isoformat()}, format="json")
        assert response.status_code == 409 and not mail.outbox

    def test_admin_action_is_billing_admin_only(self, company, product, billed):
        form = {"product": str(product.pk), "date_from": today().isoformat(), "date_to": today().isoformat(),
                "email": "ops@acme.com"}
        run_action(client_with_role("Support"), "/admin/companies/company/", "send_statement", [company], **form)
        assert not mail.outbox
        run_action(client_with_role("Billing admin"), "/admin/companies/company/", "send_statement", [company], **form)
        assert [m.to for m in mail.outbox] == [["ops@acme.com"]]


class TestHeader:
    """The statement header shows the billing profile (SPEC §3): JSON, HTML, CSV and the email."""

    @pytest.fixture
    def profiled(self, company, product):
        from companies.models import Account

        company.country = "DE"
        company.save()
        updated = Account.objects.filter(company=company, product=product).update(
            billing_email="billing@acme.example", tax_id="DE123456789",
            billing_address={"line1": "Hauptstr. 1", "city": "Berlin", "postalCode": "10115", "country": "DE"},
        )
        assert updated == 1
        return company

    def test_json_html_and_csv_carry_the_bill_to_profile(self, api, profiled):
        bill_to = statement(api, profiled).json()["billTo"]
        assert bill_to == {
            "name": profiled.name, "email": "billing@acme.example", "taxId": "DE123456789", "country": "DE",
            "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postalCode": "10115", "country": "DE"},
        }
        html = statement(api, profiled, output="html").content.decode()
        assert "Bill to" in html and "Hauptstr. 1" in html and "10115 Berlin" in html and "Tax ID: DE123456789" in html
        csv = statement(api, profiled, output="csv").content.decode()
        assert "bill_to,tax_id,,,,,,,DE123456789," in csv and "bill_to,email,,,,,,,billing@acme.example," in csv

    def test_the_email_shows_the_header(self, api, profiled):
        response = api.post(f"{URL}/send", {"companyId": str(profiled.pk), "from": today().isoformat(),
                                            "to": today().isoformat(), "email": "cfo@acme.com"}, format="json")
        assert response.status_code == 200, response.json()
        [message] = mail.outbox
        assert "billing@acme.example" in message.alternatives[0][0] and "Hauptstr. 1" in message.attachments[0][1]

    def test_no_profile_is_just_the_name(self, api, company):
        assert statement(api, company).json()["billTo"] == {
            "name": company.name, "email": "", "address": {}, "taxId": "", "country": "",
        }
