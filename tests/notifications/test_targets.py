"""The SSRF guard: which URLs an endpoint may have, checked when saved and
again at every delivery."""

from __future__ import annotations

import socket

import pytest

from config.errors import BadRequest
from notifications.models import DeliveryAttempt, WebhookEndpoint
from notifications.services import deliveries_run, endpoint_create, event_emit
from notifications.targets import TargetRefused, endpoint_url_validate, target_addresses, target_parse


@pytest.fixture
def production_guard(settings):
    settings.NOTIFICATIONS_REQUIRE_HTTPS = True
    settings.NOTIFICATIONS_ALLOW_PRIVATE_TARGETS = False


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "example.com/hook", "http://", "http://user:pw@example.com/"])
def test_only_http_urls(url):
    with pytest.raises(BadRequest) as error:
        endpoint_url_validate(url)
    assert "url" in error.value.details["fields"]


def test_development_allows_local_http():
    assert endpoint_url_validate("http://127.0.0.1:8080/hook")
    assert endpoint_url_validate("http://localhost/hook")


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",  # http in production
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://172.16.5.4/hook",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata (link-local)
        "https://[fe80::1]/hook",
        "https://0.0.0.0/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost/hook",
    ],
)
def test_production_refuses_http_and_internal_targets(production_guard, url):
    with pytest.raises(BadRequest):
        endpoint_url_validate(url)


def test_production_accepts_public_https(production_guard):
    assert endpoint_url_validate("https://93.184.215.14/hook")


def test_a_name_resolving_to_an_internal_address_is_refused(production_guard, monkeypatch):
    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(TargetRefused, match="private"):
        target_addresses(target_parse("https://hooks.example.com/x"))


@pytest.mark.django_db
def test_delivery_time_check_catches_a_rebound_name(product, receiver, settings, monkeypatch):
    """Saved while it resolved to a public address; at delivery it resolves to
    loopback (DNS rebinding): refused, recorded, nothing sent."""
    endpoint = endpoint_create(product=product, url=receiver.url.replace("127.0.0.1", "hooks.example.com"))
    settings.NOTIFICATIONS_ALLOW_PRIVATE_TARGETS = False

    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    event_emit(product=product, type="usage.threshold_reached", data={})
    deliveries_run()
    assert receiver.requests == []
    attempt = DeliveryAttempt.objects.get()
    assert not attempt.succeeded and "loopback" in attempt.error
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).enabled


@pytest.mark.django_db
def test_delivery_connects_to_the_checked_address(product, receiver, monkeypatch):
    """The request goes to the address the guard checked, with the URL's host
    name in the Host header (no second lookup)."""
    lookups = []

    def resolve(host, port, *args, **kwargs):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    endpoint_create(product=product, url=receiver.url.replace("127.0.0.1", "hooks.example.com"))
    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    event_emit(product=product, type="usage.threshold_reached", data={})
    deliveries_run()
    [request] = receiver.requests
    assert request.headers["Host"].startswith("hooks.example.com")
    # One lookup of the name (connecting to the literal address resolves nothing).
    assert [host for host in lookups if host != "127.0.0.1"] == ["hooks.example.com"]
