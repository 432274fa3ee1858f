"""A broker outage never loses queued work (SPEC §2, issue 8 item 2): every
enqueue goes through config.tasks, which logs the outage once and leaves the
work in PostgreSQL for the periodic pass (here: notification deliveries)."""

from __future__ import annotations

import logging
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from config.celery_app import app as celery_app
from config.tasks import enqueue
from notifications.models import Delivery, DeliveryStatus, WebhookEndpoint
from notifications.services.events import event_emit

from tests.platform.ports import free_port

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def broker_down():
    conf = celery_app.conf
    saved = conf.broker_url, conf.task_always_eager
    conf.broker_url, conf.task_always_eager = f"redis://127.0.0.1:{free_port()}/0", False
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    try:
        yield
    finally:
        conf.broker_url, conf.task_always_eager = saved
        celery_app._pool = None
        celery_app.amqp._producer_pool = None


def test_work_enqueued_during_a_broker_outage_waits_in_the_database(product, caplog,
                                                                     django_capture_on_commit_callbacks):
    WebhookEndpoint.objects.create(product=product, url="https://hooks.example.com/x", event_types=[], secret="s" * 32)
    with broker_down(), caplog.at_level(logging.INFO):
        for _ in range(3):
            with django_capture_on_commit_callbacks(execute=True):
                event_emit(product=product, type="feature_access.changed", data={"companyId": "c"})
    deliveries = Delivery.objects.all()
    assert deliveries.count() == 3
    assert all(d.status == DeliveryStatus.PENDING and d.next_attempt_at is not None for d in deliveries)
    outage_logs = [r for r in caplog.records if "broker unreachable" in r.getMessage()]
    assert len(outage_logs) == 1, "logged once per outage, not per enqueue"


def test_enqueue_reports_success_and_recovery(caplog):
    from notifications.tasks import deliver_event

    with broker_down():
        assert enqueue(deliver_event, "00000000-0000-0000-0000-000000000000") is False
    # Back on the eager test broker: the task runs (and finds nothing to do).
    with caplog.at_level(logging.INFO):
        assert enqueue(deliver_event, "00000000-0000-0000-0000-000000000000") is True
    assert any("broker reachable again" in r.getMessage() for r in caplog.records)


def test_no_code_enqueues_without_config_tasks():
    """Every .delay()/apply_async of the apps goes through config.tasks.enqueue."""
    apps = ["companies", "notifications", "credits", "entitlements", "metering", "billing", "insights", "desk"]
    paths = [str(ROOT / app) for app in apps if (ROOT / app).exists()]
    found = subprocess.run(
        ["grep", "-rnE", r"\.delay\(|\.apply_async\(", "--include=*.py", *paths], capture_output=True, text=True
    ).stdout.strip()
    assert found == "", f"enqueue through config.tasks.enqueue / enqueue_on_commit:\n{found}"
    assert sys.modules["config.tasks"]
