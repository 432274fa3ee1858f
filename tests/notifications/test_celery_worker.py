"""A real Celery worker (subprocess) on the real Redis broker: a usage track
through the API crosses a threshold, the event is enqueued after the commit,
and the worker delivers it, signed, to a real local receiver (the broker-down
case is in test_delivery.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from config.celery_app import app as celery_app
from notifications.models import Delivery, DeliveryStatus
from notifications.services import endpoint_create
from notifications.signing import signature_verify
from tests.factories.companies import CompanyFactory, ProductLinkFactory
from tests.factories.entitlements import FeatureAccessFactory, MeteredFeatureFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
# A queue of this run's own: other test runs may share the Redis DB (and run
# workers on the default queue against other databases).
QUEUE = f"notifications-test-{os.getpid()}-{time.monotonic_ns()}"


@pytest.fixture
def worker():
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.notifications.celery_worker_settings",
        "DATABASE_URL": database_url,
        "CACHE_KEY_PREFIX": "notifications-worker-test",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", QUEUE],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def _route_notifications(queue: str | None) -> None:
    celery_app.conf.task_routes = {"notifications.*": {"queue": queue}} if queue else None
    # The router and its route table are built once; rebuild them with these routes.
    celery_app.amqp._rtable = None
    celery_app.amqp.__dict__.pop("router", None)


@pytest.fixture
def through_the_broker():
    """This process enqueues to the real broker (on QUEUE) instead of running
    tasks inline."""
    # shared_task proxies resolve to the *current* app: make sure it is ours
    # (a Celery app created by another test would otherwise take its place).
    celery_app.set_current()
    celery_app.conf.task_always_eager = False
    _route_notifications(QUEUE)
    yield
    celery_app.conf.task_always_eager = True
    _route_notifications(None)


def _wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_threshold_event_is_delivered_by_a_real_worker(api, product, receiver, worker, through_the_broker):
    company = CompanyFactory(name="Acme Inc", short_id="acme-inc")
    ProductLinkFactory(product=product, company=company, external_org_id="org_acme")
    feature = MeteredFeatureFactory(product=product, code="ai_credit")
    FeatureAccessFactory(company=company, feature=feature, quantity_limit=10)
    endpoint = endpoint_create(product=product, url=receiver.url, event_types=["usage.threshold_reached"])

    response = api.post(
        "/api/v1/usage/track", {"companyId": str(company.pk), "featureCode": "ai_credit", "quantity": 8}, format="json"
    )
    assert response.status_code == 200, response.content
    # The API answered before any delivery; the worker sends it.
    assert _wait_for(lambda: receiver.requests), "the worker delivered nothing"
    [request] = receiver.requests
    assert signature_verify(secret=endpoint.secret, header=request.headers["SaaSDesk-Signature"], body=request.body)
    body = json.loads(request.body)
    assert body["type"] == "usage.threshold_reached" and body["data"]["threshold"] == 80
    assert _wait_for(lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 1)
