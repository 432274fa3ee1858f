"""The billing admin: company page inlines, read-only webhook list with a
permission-gated reprocess action, retry delivery on usage events, drift list."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from billing.models import WebhookEventStatus
from metering.models import UsageEvent
from tests.billing.conftest import seed_usage_events
from tests.factories.billing import BillingProfileFactory, StripeWebhookEventFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client():
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def staff_client(*permissions: str) -> Client:
    user = User.objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_company_page_shows_billing_profile_and_subscriptions(superuser_client, company, product, catalog):
    BillingProfileFactory(company=company, stripe_customer_id="cus_admin_1")
    SubscriptionFactory(company=company, product=product, tier=catalog.pro, display_name="Acme Pro", stripe_subscription_id="sub_admin_1")

    response = superuser_client.get(f"/admin/companies/company/{company.pk}/change/")

    assert response.status_code == 200
    assert b"cus_admin_1" in response.content
    assert b"sub_admin_1" in response.content


def test_webhook_list_and_detail_are_read_only(superuser_client):
    event = StripeWebhookEventFactory(status=WebhookEventStatus.FAILED, processing_error="boom")

    listing = superuser_client.get("/admin/billing/stripewebhookevent/?status__exact=failed")
    detail = superuser_client.get(f"/admin/billing/stripewebhookevent/{event.pk}/change/")

    assert listing.status_code == 200
    assert event.stripe_event_id.encode() in listing.content
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    assert superuser_client.get("/admin/billing/stripewebhookevent/add/").status_code == 403


def test_reprocess_action_needs_the_permission(fake_stripe):
    event = StripeWebhookEventFactory(type="customer.created", status=WebhookEventStatus.FAILED)
    data = {"action": "reprocess", "_selected_action": [str(event.pk)]}

    viewer = staff_client("view_stripewebhookevent")
    assert b"reprocess" not in viewer.get("/admin/billing/stripewebhookevent/").content
    viewer.post("/admin/billing/stripewebhookevent/", data)
    event.refresh_from_db()
    assert event.status == WebhookEventStatus.FAILED

    User.objects.filter(username="staff").delete()
    billing_admin = staff_client("view_stripewebhookevent", "reprocess_webhook")
    response = billing_admin.post("/admin/billing/stripewebhookevent/", data, follow=True)

    assert response.status_code == 200
    event.refresh_from_db()
    assert event.status == WebhookEventStatus.IGNORED  # handled: a type we do not process


def test_retry_delivery_action_on_usage_events(billed_company, fake_stripe, stripe_catalog):
    events = seed_usage_events(billed_company, stripe_catalog.ai_credit, 2, status="failed")
    client = staff_client("view_usageevent", "retry_usage_delivery")

    response = client.post(
        "/admin/metering/usageevent/",
        {"action": "retry_stripe_delivery", "_selected_action": [str(event.pk) for event in events]},
        follow=True,
    )

    assert response.status_code == 200
    assert set(UsageEvent.objects.values_list("stripe_delivery_status", flat=True)) == {"pending"}


def test_retry_delivery_is_not_offered_without_the_permission(billed_company, stripe_catalog):
    seed_usage_events(billed_company, stripe_catalog.ai_credit, 1, status="failed")
    client = staff_client("view_usageevent")

    response = client.get("/admin/metering/usageevent/")

    assert response.status_code == 200
    assert b"retry_stripe_delivery" not in response.content


def test_drift_list(superuser_client, company):
    from datetime import UTC, datetime

    from billing.models import MeterDrift

    MeterDrift.objects.create(
        company=company, stripe_customer_id="cus_drift", meter_event_name="ai_credit",
        window_start=datetime(2026, 1, 1, tzinfo=UTC), window_end=datetime(2026, 1, 2, tzinfo=UTC),
        delivered_value=10, stripe_value=7, difference=3,
    )

    response = superuser_client.get("/admin/billing/meterdrift/")

    assert response.status_code == 200
    assert b"cus_drift" in response.content


def test_subscription_admin_pages(superuser_client, company, product):
    subscription = SubscriptionFactory(company=company, product=product)

    assert superuser_client.get("/admin/billing/subscription/?status__exact=active").status_code == 200
    assert superuser_client.get(f"/admin/billing/subscription/{subscription.pk}/change/").status_code == 200
    assert superuser_client.get(f"/admin/billing/subscription/{subscription.pk}/history/").status_code == 200
    assert superuser_client.get("/admin/billing/billingprofile/").status_code == 200
