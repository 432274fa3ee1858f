"""Issue 8's Redis-outage test on a live server (gunicorn, the real settings,
not eager Celery): with REDIS_URL at a closed port — cache and broker both
gone — checks, tracks (one crossing an alert threshold, so a notification is
enqueued) and lists still answer; after a restart with Redis back, retrying
the track made during the outage counts it once."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest

from companies.services import api_key_create
from metering.models import UsageEvent, UsageMeter
from notifications.models import Delivery, WebhookEndpoint
from tests.live import gunicorn_server
from tests.platform.ports import free_port
from tests.factories.companies import CompanyFactory, ProductFactory, ProductLinkFactory
from tests.factories.entitlements import FeatureAccessFactory, MeteredFeatureFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@contextmanager
def live_server(redis_url: str | None):
    env = {"CACHE_KEY_PREFIX": f"outage-live-{os.getpid()}"}
    if redis_url:
        env["REDIS_URL"] = redis_url
    with gunicorn_server(env=env, workers=1, threads=2) as server:
        yield server


def _call(server, key: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        f"{server.base}/api/v1/{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), dict(error.headers)


def test_a_live_server_with_redis_down_keeps_answering_and_loses_nothing():
    product = ProductFactory(code="chat", name="Chat")
    _, key = api_key_create(product=product, name="live")
    company = CompanyFactory(name="Acme", short_id="acme")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    feature = MeteredFeatureFactory(product=product, code="ai_credit")
    FeatureAccessFactory(company=company, feature=feature, quantity_limit=10)
    WebhookEndpoint.objects.create(product=product, url="https://hooks.example.com/in", event_types=[], secret="s" * 32)
    track = {"companyId": str(company.pk), "featureCode": "ai_credit", "quantity": 9, "idempotencyKey": "outage-job-1"}

    closed = f"redis://127.0.0.1:{free_port()}/0"
    with live_server(closed) as server:
        status, check, _ = _call(server, key, "GET", f"companies/{company.pk}/features/ai_credit")
        assert status == 200 and check["canUse"] is True
        status, during, _ = _call(server, key, "POST", "usage/track", track)  # crosses the 80 % alert
        assert status == 200, during
        assert during["currentUsage"] == 9
        for path in ("tiers", f"companies/{company.pk}/features", f"usage/history?companyId={company.pk}",
                     f"companies/{company.pk}/contacts"):
            status, body, _ = _call(server, key, "GET", path)
            assert status == 200, (path, body)
        status, _, headers = _call(server, "os_sk_" + "u" * 43, "GET", "tiers")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        log = server.log.read_text()
    assert log.count("cache unreachable") == 1, log
    assert "Traceback" not in log, log
    # The notification the alert enqueued waits in the database for the beat pass.
    assert Delivery.objects.filter(status="pending").count() >= 1

    with live_server(os.environ.get("REDIS_URL")) as server:
        status, after, headers = _call(server, key, "POST", "usage/track", track)
        assert status == 200, after
        assert headers.get("Idempotent-Replayed") == "true"
        assert after["currentUsage"] == 9
    assert UsageMeter.objects.get().value == 9
    assert UsageEvent.objects.count() == 1
