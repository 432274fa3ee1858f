"""The outbox and the delivery worker, against a real local HTTP receiver."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from notifications.models import Delivery, DeliveryAttempt, DeliveryStatus, DisabledReason, Event, WebhookEndpoint
from notifications.services import deliveries_run, delivery_resend, endpoint_create, event_emit
from notifications.services.delivery import retry_delay
from notifications.signing import signature_verify

pytestmark = pytest.mark.django_db


def _make_due():
    Delivery.objects.filter(status=DeliveryStatus.PENDING).update(next_attempt_at=timezone.now())


def test_rolled_back_change_emits_nothing(product, receiver):
    endpoint_create(product=product, url=receiver.url)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            event_emit(product=product, type="usage.limit_reached", data={"companyId": "x"})
            raise RuntimeError("the change fails")
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()
    deliveries_run()
    assert receiver.requests == []


def test_committed_event_is_delivered_signed_after_commit(product, receiver, django_capture_on_commit_callbacks):
    endpoint = endpoint_create(product=product, url=receiver.url)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event = event_emit(product=product, type="usage.limit_reached", data={"featureCode": "ai_credit"})
    # Nothing leaves before the commit ...
    assert receiver.requests == []
    for callback in callbacks:
        callback()
    # ... and after it, one signed request (Celery runs eagerly in tests).
    [request] = receiver.requests
    body = json.loads(request.body)
    assert body == {
        "id": str(event.pk),
        "type": "usage.limit_reached",
        "createdAt": body["createdAt"],
        "product": "chat",
        "data": {"featureCode": "ai_credit"},
    }
    assert body["createdAt"].endswith("Z")
    assert request.headers["SaaSDesk-Event-Id"] == str(event.pk)
    assert signature_verify(secret=endpoint.secret, header=request.headers["SaaSDesk-Signature"], body=request.body)
    assert not signature_verify(secret="whsec_wrong", header=request.headers["SaaSDesk-Signature"], body=request.body)
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    attempt = DeliveryAttempt.objects.get()
    assert attempt.succeeded and attempt.status_code == 200


def _documented_verify():
    """The `verify` function of docs/notifications.md's recipe, run as written."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "notifications.md").read_text()
    section = doc[doc.index("### Verifying a signature") :]
    code = section[section.index("```python") + len("```python") : section.index("```", section.index("```python") + 3)]
    assert len(code.strip().splitlines()) <= 10
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]


def test_documented_verification_recipe(product, receiver):
    """The ten lines of docs/notifications.md, run against a real delivery."""
    verify = _documented_verify()
    endpoint = endpoint_create(product=product, url=receiver.url)
    event_emit(product=product, type="feature_access.changed", data={})
    deliveries_run()
    [request] = receiver.requests
    header = request.headers["SaaSDesk-Signature"]
    assert verify(endpoint.secret, header, request.body)
    assert not verify(endpoint.secret, header, request.body + b" ")
    assert not verify("whsec_other", header, request.body)
    stale = "t=1000000000," + header.split(",", 1)[1]
    assert not verify(endpoint.secret, stale, request.body)


def test_endpoint_filters_event_types_and_disabled_endpoints_get_nothing(product, other_product, receiver):
    wants_limit = endpoint_create(product=product, url=receiver.url, event_types=["usage.limit_reached"])
    everything = endpoint_create(product=product, url=receiver.url + "/all")
    disabled = endpoint_create(product=product, url=receiver.url + "/off")
    WebhookEndpoint.objects.filter(pk=disabled.pk).update(enabled=False)
    endpoint_create(product=other_product, url=receiver.url + "/other")
    event_emit(product=product, type="feature_access.changed", data={})
    event_emit(product=product, type="usage.limit_reached", data={})
    assert Delivery.objects.filter(endpoint=wants_limit).count() == 1
    assert Delivery.objects.filter(endpoint=everything).count() == 2
    assert Delivery.objects.count() == 3


def test_retries_until_the_receiver_recovers(product, receiver):
    receiver.script.extend([500, 503, 502])
    endpoint = endpoint_create(product=product, url=receiver.url)
    event = event_emit(product=product, type="usage.threshold_reached", data={"threshold": 80})
    for _ in range(4):
        deliveries_run()
        _make_due()
    assert len(receiver.requests) == 4
    assert {r.headers["SaaSDesk-Event-Id"] for r in receiver.requests} == {str(event.pk)}
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 4
    attempts = list(DeliveryAttempt.objects.order_by("id"))
    assert [a.status_code for a in attempts] == [500, 503, 502, 200]
    assert attempts[0].error == "HTTP 500" and attempts[0].response_excerpt.startswith("receiver says no")
    assert len(attempts[0].response_excerpt) <= 1024
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is None and endpoint.last_success_at is not None


def test_a_failed_attempt_is_retried_later_not_at_once(product, receiver):
    receiver.script.append(500)
    endpoint_create(product=product, url=receiver.url)
    event_emit(product=product, type="usage.threshold_reached", data={})
    before = timezone.now()
    deliveries_run()
    deliveries_run()  # nothing is due yet
    assert len(receiver.requests) == 1
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert timedelta(seconds=7) < delivery.next_attempt_at - before < timedelta(seconds=13)


def test_retry_schedule_grows_to_hours_with_jitter():
    assert timedelta(seconds=8) <= retry_delay(1) <= timedelta(seconds=12)
    assert timedelta(seconds=48) <= retry_delay(2) <= timedelta(seconds=72)
    assert retry_delay(5) > retry_delay(3)
    assert retry_delay(30) <= timedelta(hours=6, minutes=72)


def test_unreachable_receiver_is_an_attempt_not_an_error(product):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint_create(product=product, url=f"http://127.0.0.1:{port}/gone")
    event_emit(product=product, type="usage.threshold_reached", data={})
    result = deliveries_run()
    assert result.failed == 1
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status_code is None and "refused" in attempt.error.lower()
    assert Delivery.objects.get().status == DeliveryStatus.PENDING


def test_timeout_is_short_and_recorded(product, receiver, settings):
    settings.NOTIFICATIONS_TIMEOUT_SECONDS = 0.3
    receiver.script.append("sleep:1")
    endpoint_create(product=product, url=receiver.url)
    event_emit(product=product, type="usage.threshold_reached", data={})
    deliveries_run()
    attempt = DeliveryAttempt.objects.get()
    assert not attempt.succeeded and "Timed out" in attempt.error


def test_410_gone_disables_the_endpoint_at_once(product, receiver):
    receiver.default_status = 410
    endpoint = endpoint_create(product=product, url=receiver.url)
    event_emit(product=product, type="usage.threshold_reached", data={})
    event_emit(product=product, type="usage.threshold_reached", data={})
    deliveries_run(batch_size=1, max_batches=1)
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == DisabledReason.GONE
    assert Delivery.objects.filter(status=DeliveryStatus.FAILED).count() == 1
    # The other delivery waits; a disabled endpoint is not called again.
    deliveries_run()
    assert len(receiver.requests) == 1
    # New events no longer fan out to it.
    event_emit(product=product, type="usage.threshold_reached", data={})
    assert Delivery.objects.count() == 2


def test_three_days_of_failures_disable_and_flag_the_endpoint(product, receiver):
    receiver.default_status = 500
    endpoint = endpoint_create(product=product, url=receiver.url)
    event_emit(product=product, type="usage.threshold_reached", data={})
    deliveries_run()
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is not None
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=3, minutes=1))
    _make_due()
    deliveries_run()
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == DisabledReason.FAILING


def test_gives_up_after_the_retry_window(product, receiver):
    receiver.default_status = 500
    endpoint_create(product=product, url=receiver.url)
    event_emit(product=product, type="usage.threshold_reached", data={})
    Delivery.objects.update(retry_until=timezone.now() + timedelta(seconds=1))
    deliveries_run()
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is None


def test_resend_sends_again(product, receiver):
    endpoint_create(product=product, url=receiver.url)
    event_emit(product=product, type="usage.threshold_reached", data={})
    deliveries_run()
    delivery = Delivery.objects.get()
    delivery_resend(delivery=delivery)
    deliveries_run()
    assert len(receiver.requests) == 2
    assert receiver.requests[0].headers["SaaSDesk-Event-Id"] == receiver.requests[1].headers["SaaSDesk-Event-Id"]
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 2


def test_run_job_delivers_what_waits(product, receiver, capsys):
    endpoint_create(product=product, url=receiver.url)
    event_emit(product=product, type="usage.threshold_reached", data={})
    call_command("run_job", "deliver_notifications")
    assert len(receiver.requests) == 1
    assert '"succeeded": 1' in capsys.readouterr().out


def test_run_job_lists_the_jobs(capsys):
    call_command("run_job", "--list")
    assert "deliver_notifications" in capsys.readouterr().out.split()


def test_unknown_event_type_is_a_programming_error(product):
    with pytest.raises(ValueError):
        event_emit(product=product, type="usage.nonsense", data={})


def test_broker_down_leaves_the_work_in_the_database(product, receiver, monkeypatch, django_capture_on_commit_callbacks):
    from notifications import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(tasks.deliver_event, "apply_async", broker_down)
    endpoint_create(product=product, url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        event_emit(product=product, type="usage.threshold_reached", data={})
    assert receiver.requests == [] and Delivery.objects.get().status == DeliveryStatus.PENDING
    tasks.deliver_due()
    assert len(receiver.requests) == 1


def test_a_dripping_receiver_cannot_hold_a_worker(product, receiver, settings):
    """Each byte arrives within the socket timeout, but the whole attempt is
    cut at twice the timeout."""
    settings.NOTIFICATIONS_TIMEOUT_SECONDS = 0.2
    receiver.script.append("drip:0.1")
    endpoint_create(product=product, url=receiver.url)
    event_emit(product=product, type="usage.threshold_reached", data={})
    deliveries_run()
    attempt = DeliveryAttempt.objects.get()
    assert not attempt.succeeded and "no complete answer" in attempt.error


def test_a_worker_stops_sending_before_its_lease_runs_out(product, receiver, settings):
    """With a lease that covers about two slow attempts, the worker releases
    the rest of its batch and claims again: everything is delivered once."""
    settings.NOTIFICATIONS_TIMEOUT_SECONDS = 0.5
    settings.NOTIFICATIONS_LEASE_SECONDS = 2 * 0.5 + 5.0 + 0.5
    receiver.script.extend(["sleep:0.3"] * 6)
    endpoint_create(product=product, url=receiver.url)
    for n in range(6):
        event_emit(product=product, type="usage.threshold_reached", data={"n": n})
    result = deliveries_run(batch_size=10)
    assert result.succeeded == 6 and result.batches > 1
    assert len(receiver.requests) == 6
    assert len({r.headers["SaaSDesk-Event-Id"] for r in receiver.requests}) == 6
    assert not Delivery.objects.filter(lease_token__isnull=False).exists()


def test_prune_drops_old_events_with_their_deliveries(product, receiver, capsys):
    endpoint_create(product=product, url=receiver.url)
    old = event_emit(product=product, type="usage.threshold_reached", data={"old": True})
    deliveries_run()
    Event.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=91))
    kept = event_emit(product=product, type="usage.threshold_reached", data={"old": False})
    call_command("run_job", "prune_notifications")
    assert '"deleted": 1' in capsys.readouterr().out
    assert list(Event.objects.values_list("pk", flat=True)) == [kept.pk]
    assert Delivery.objects.count() == 1 and not DeliveryAttempt.objects.filter(delivery__event_id=old.pk).exists()
