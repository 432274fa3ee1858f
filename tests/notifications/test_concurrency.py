"""Several workers deliver at once without sending an attempt twice
(SELECT … FOR UPDATE SKIP LOCKED and leases), on PostgreSQL with real threads."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from notifications.models import Delivery, DeliveryAttempt, DeliveryStatus
from notifications.services import deliveries_run, endpoint_create, event_emit

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_workers_deliver_each_event_once(product, receiver, monkeypatch):
    # The work waits in the database (as with the broker down) for the workers below.
    monkeypatch.setattr("notifications.services.events.enqueue_event_delivery", lambda event_id: None)
    endpoint_create(product=product, url=receiver.url)
    endpoint_create(product=product, url=receiver.url + "/second")
    events = [event_emit(product=product, type="usage.threshold_reached", data={"n": n}) for n in range(60)]
    results, errors = [], []
    start = threading.Barrier(3)

    def worker():
        try:
            start.wait()
            results.append(deliveries_run(batch_size=5))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    sent = Counter((r.path, r.headers["SaaSDesk-Event-Id"]) for r in receiver.requests)
    assert len(sent) == 2 * len(events)
    assert set(sent.values()) == {1}
    assert sum(r.attempted for r in results) == 120
    assert DeliveryAttempt.objects.count() == 120
    assert Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 120
