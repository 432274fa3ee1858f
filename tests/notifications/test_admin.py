"""Endpoints, events and deliveries in the admin, per role."""

from __future__ import annotations

import pytest
from django.test import Client

from notifications.models import Delivery, DeliveryStatus, WebhookEndpoint
from notifications.services import deliveries_run, endpoint_create, event_emit
from tests.entitlements.roles import staff_user

pytestmark = pytest.mark.django_db


def _client(role: str, username: str) -> Client:
    client = Client()
    client.force_login(staff_user(role, username))
    return client


def test_billing_admin_creates_an_endpoint_and_sees_the_secret_once(product):
    client = _client("Billing admin", "bea")
    response = client.post(
        "/admin/notifications/webhookendpoint/add/",
        {"product": str(product.pk), "url": "https://hooks.example.com/x", "description": "CRM", "event_types": ["usage.limit_reached"], "enabled": "on"},
    )
    # The page after the save shows the secret (never a message: it would sit in the session).
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["usage.limit_reached"] and endpoint.secret.startswith("whsec_")
    assert endpoint.secret in response.content.decode()
    page = client.get(f"/admin/notifications/webhookendpoint/{endpoint.pk}/change/")
    assert page.status_code == 200 and endpoint.secret not in page.content.decode()


def test_billing_admin_edits_and_disables_an_endpoint(product):
    endpoint = endpoint_create(product=product, url="https://hooks.example.com/x")
    client = _client("Billing admin", "bea")
    response = client.post(
        f"/admin/notifications/webhookendpoint/{endpoint.pk}/change/",
        {"url": "https://hooks.example.com/y", "description": "", "event_types": ["feature_access.changed"]},
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.url == "https://hooks.example.com/y" and endpoint.event_types == ["feature_access.changed"]
    assert not endpoint.enabled and endpoint.disabled_reason == "manual"


def test_admin_refuses_a_bad_url(product, settings):
    settings.NOTIFICATIONS_ALLOW_PRIVATE_TARGETS = False
    client = _client("Billing admin", "bea")
    response = client.post(
        "/admin/notifications/webhookendpoint/add/",
        {"product": str(product.pk), "url": "https://169.254.169.254/latest", "enabled": "on"},
    )
    assert response.status_code == 200 and "link-local" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_support_sees_but_does_not_manage_endpoints(product):
    endpoint_create(product=product, url="https://hooks.example.com/x")
    client = _client("Support", "sam")
    assert client.get("/admin/notifications/webhookendpoint/").status_code == 200
    assert client.get("/admin/notifications/webhookendpoint/add/").status_code == 403


def test_failing_endpoints_are_flagged_and_deliveries_resent(product, receiver):
    receiver.script.append(500)
    endpoint = endpoint_create(product=product, url=receiver.url)
    event_emit(product=product, type="usage.limit_reached", data={})
    deliveries_run()
    client = _client("Billing admin", "bea")
    listing = client.get("/admin/notifications/webhookendpoint/?health=failing")
    assert "Failing since" in listing.content.decode()
    delivery = Delivery.objects.get()
    assert client.get(f"/admin/notifications/delivery/?endpoint__id__exact={endpoint.pk}").status_code == 200
    assert client.get(f"/admin/notifications/delivery/{delivery.pk}/change/").status_code == 200
    assert client.get(f"/admin/notifications/event/{delivery.event_id}/change/").status_code == 200
    response = client.post(
        "/admin/notifications/delivery/",
        {"action": "resend", "_selected_action": [str(delivery.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    deliveries_run()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 2


def test_support_cannot_resend(product, receiver):
    endpoint_create(product=product, url=receiver.url)
    event_emit(product=product, type="usage.limit_reached", data={})
    delivery = Delivery.objects.get()
    client = _client("Support", "sam")
    page = client.get("/admin/notifications/delivery/")
    assert page.status_code == 200 and "Resend selected" not in page.content.decode()
    assert delivery.status == DeliveryStatus.PENDING


def test_failing_list_for_the_dashboard(product, receiver):
    from notifications.selectors import endpoint_failing_list

    healthy = endpoint_create(product=product, url=receiver.url)
    gone = endpoint_create(product=product, url=receiver.url + "/gone")
    WebhookEndpoint.objects.filter(pk=gone.pk).update(enabled=False, disabled_reason="gone")
    assert list(endpoint_failing_list()) == [WebhookEndpoint.objects.get(pk=gone.pk)]
    assert healthy not in endpoint_failing_list()


def test_the_admin_index_flags_failing_endpoints(product, admin_client):
    endpoint = endpoint_create(product=product, url="https://hooks.example.com/broken")
    page = admin_client.get("/admin/")
    assert page.status_code == 200 and "Failing webhook endpoints" not in page.content.decode()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False, disabled_reason="failing")
    page = admin_client.get("/admin/").content.decode()
    assert "Failing webhook endpoints" in page and "hooks.example.com/broken" in page
    assert "Disabled: Failing for three days" in page
