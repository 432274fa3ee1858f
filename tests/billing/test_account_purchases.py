"""The account's derived lifetimeValue and firstPurchaseAt (SPEC §3) follow
the paid invoices billing mirrors, and a redelivered webhook never counts twice."""

from __future__ import annotations

import pytest

from billing.models import Invoice
from tests.billing.test_invoices import deliver_invoice_events, subscribed  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def test_paid_invoices_make_lifetime_value_and_first_purchase(api, company, fake_stripe, subscribed):  # noqa: F811
    deliver_invoice_events(api, fake_stripe, "invoice.created", "invoice.finalized", "invoice.paid")
    deliver_invoice_events(api, fake_stripe, "invoice.paid")  # redelivered
    fake_stripe.advance_subscription(subscribed.stripe_subscription_id, paid=True)
    deliver_invoice_events(api, fake_stripe, "invoice.paid")

    paid = Invoice.objects.filter(status="paid").order_by("paid_at")
    assert paid.count() == 2
    body = api.get(f"/api/v1/companies/{company.pk}").json()
    assert body["lifetimeValue"] == sum(invoice.amount_paid for invoice in paid) == 9800
    first = paid[0].paid_at or paid[0].stripe_created_at
    assert body["firstPurchaseAt"] == first.isoformat().replace("+00:00", "Z")
