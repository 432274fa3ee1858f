"""Invoices mirrored from Stripe (SPEC §8) and subscription credits (§7),
against the fake Stripe over real HTTP: invoice.* webhooks (re-read from
Stripe), `manage.py sync_invoices`, GET /billing/invoices(/id), the company
page, `invoice.payment_failed`, a paid cycle granting `creditsPerCycle` once."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.models import Invoice, Subscription
from credits.models import Bucket, CreditLot, EntryKind, LedgerEntry
from credits.verify import credits_verify
from notifications.models import Event
from tests.billing.test_api_money_flows import add_card, subscribe
from tests.billing.test_webhooks import post_event

pytestmark = pytest.mark.django_db

API = "/api/v1/billing/invoices"


def deliver_invoice_events(api, fake, *types):
    """Post the fake's invoice events of these types (as Stripe would), in order."""
    for event in [e for e in fake.events if e["type"] in types]:
        assert post_event(api, fake, event).status_code == 200, event["type"]


@pytest.fixture
def subscribed(api, company, fake_stripe, stripe_catalog):
    stripe_catalog.pro.credits_per_cycle = 500
    stripe_catalog.pro.save()
    add_card(api, fake_stripe, company)
    body = subscribe(api, company).json()
    return Subscription.objects.get(pk=body["id"])


class TestMirror:
    def test_paid_first_invoice_is_mirrored_and_grants_the_cycle_once(self, api, company, fake_stripe, subscribed):
        deliver_invoice_events(api, fake_stripe, "invoice.created", "invoice.finalized", "invoice.paid")
        deliver_invoice_events(api, fake_stripe, "invoice.paid")  # Stripe redelivers (new event ids too)

        invoice = Invoice.objects.get()
        stripe_invoice = fake_stripe.get(invoice.stripe_invoice_id)
        assert (invoice.status, invoice.total, invoice.amount_paid, invoice.currency) == ("paid", 4900, 4900, "eur")
        assert invoice.number == stripe_invoice["number"] and invoice.hosted_invoice_url and invoice.invoice_pdf
        assert invoice.subscription == subscribed and invoice.billing_reason == "subscription_create"
        lot = CreditLot.objects.get()
        assert (lot.bucket, lot.amount, lot.stripe_invoice_id, lot.cycle_tier_code) == (
            Bucket.SUBSCRIPTION, 500, invoice.stripe_invoice_id, "pro")
        assert lot.expires_at == subscribed.current_period_end
        assert LedgerEntry.objects.filter(kind=EntryKind.GRANT).count() == 1
        assert credits_verify() == {}

    def test_each_paid_cycle_grants_once(self, api, company, fake_stripe, subscribed):
        fake_stripe.advance_subscription(subscribed.stripe_subscription_id, paid=True)
        deliver_invoice_events(api, fake_stripe, "invoice.paid")
        deliver_invoice_events(api, fake_stripe, "invoice.paid")

        assert Invoice.objects.count() == 2
        lots = CreditLot.objects.order_by("expires_at")
        assert [lot.amount for lot in lots] == [500, 500]
        assert lots[1].expires_at > lots[0].expires_at
        assert credits_verify() == {}

    def test_failed_payment_is_mirrored_and_notified(self, api, company, fake_stripe, subscribed):
        fake_stripe.advance_subscription(subscribed.stripe_subscription_id, paid=False)
        deliver_invoice_events(api, fake_stripe, "invoice.payment_failed")

        failed = Invoice.objects.get(billing_reason="subscription_cycle")
        assert failed.status == "open" and failed.amount_due > 0
        event = Event.objects.get(type="invoice.payment_failed")
        assert event.data["stripeInvoiceId"] == failed.stripe_invoice_id and event.data["amountDue"] == failed.amount_due
        assert not CreditLot.objects.filter(stripe_invoice_id=failed.stripe_invoice_id).exists()

    def test_sync_invoices_backfills_and_grants_what_webhooks_missed(self, api, company, fake_stripe, subscribed):
        call_command("sync_invoices")
        call_command("sync_invoices")

        assert Invoice.objects.count() == 1 and CreditLot.objects.count() == 1

    def test_unknown_customer_or_invoice_is_ignored(self, api, fake_stripe, stripe_catalog):
        event = fake_stripe.build_event("invoice.paid", {"id": "in_missing", "object": "invoice"})
        assert post_event(api, fake_stripe, event).status_code == 200
        assert not Invoice.objects.exists()


class TestApi:
    def test_list_and_detail(self, api, company, fake_stripe, subscribed):
        deliver_invoice_events(api, fake_stripe, "invoice.paid")

        page = api.get(API, {"companyId": str(company.pk)}).json()
        assert page["hasMore"] is False and len(page["data"]) == 1
        row = page["data"][0]
        assert set(row) >= {"id", "stripeInvoiceId", "number", "status", "currency", "subtotal", "tax", "total",
                            "amountPaid", "amountDue", "periodStart", "periodEnd", "hostedInvoiceUrl", "invoicePdf",
                            "createdAt"}
        detail = api.get(f"{API}/{row['id']}").json()
        assert [line["priceId"] for line in detail["lines"]] == ["price_pro_base", "price_ai"]
        assert detail["lines"][0]["amount"] == 4900 and detail["lines"][0]["quantity"] == 1
        assert api.get(API, {"companyId": str(company.pk), "status": "void"}).json()["data"] == []
        assert api.get(API, {"companyId": str(company.pk), "status": "nope"}).status_code == 400

    def test_other_product_sees_nothing(self, api, other_api, company, fake_stripe, subscribed):
        deliver_invoice_events(api, fake_stripe, "invoice.paid")
        invoice = Invoice.objects.get()
        assert other_api.get(f"{API}/{invoice.pk}").status_code == 404


def test_company_page_shows_invoices_in_currency_units(admin_client, api, company, fake_stripe, subscribed):
    deliver_invoice_events(api, fake_stripe, "invoice.paid")
    invoice = Invoice.objects.get()

    page = admin_client.get(f"/admin/companies/company/{company.pk}/change/").content.decode()

    assert "49.00 EUR" in page and invoice.hosted_invoice_url in page and invoice.invoice_pdf in page
    assert admin_client.get("/admin/billing/invoice/").status_code == 200
