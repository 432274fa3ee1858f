"""Delivering events to the products' endpoints (SPEC §11).

Contract: at least once, never inside an API request, never lost.

- Work is claimed in short transactions with `SELECT … FOR UPDATE SKIP
  LOCKED` and stamped with a lease (`lease_token`, `leased_until`); the HTTP
  call happens outside any transaction, and the outcome is recorded only if
  the lease is still ours. So several workers deliver at once without
  sending an attempt twice, and the rows of a worker that died become due
  again when its lease ends.
- A failed attempt (timeout, refused connection, non-2xx, SSRF refusal) is
  kept with its status code, duration, error and a bounded response excerpt,
  and is retried: about 10 s, then about a minute, then exponential backoff
  with ±20 % jitter, for three days (`Delivery.retry_until`).
- An endpoint whose attempts have failed for three days in a row is disabled
  (`disabled_reason="failing"`); a 410 Gone disables it at once.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from config.api.serializers import iso_utc
from config.errors import BadRequest
from config.tasks import enqueue

from ..models import Delivery, DeliveryAttempt, DeliveryStatus, DisabledReason, Event, WebhookEndpoint
from ..signing import EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header
from ..targets import TargetRefused, target_addresses, target_parse

logger = logging.getLogger("saasdesk.notifications.delivery")

RESPONSE_EXCERPT_BYTES = 1024
# Successful attempts recorded per transaction (failures are recorded at once).
RECORD_GROUP_SIZE = 25
MAX_ERROR_LENGTH = 500
USER_AGENT = "SaaSDesk-Webhooks/1.0"


def retry_window() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "NOTIFICATIONS_RETRY_WINDOW_SECONDS", 3 * 24 * 3600)))


def _timeout() -> float:
    return float(getattr(settings, "NOTIFICATIONS_TIMEOUT_SECONDS", 5.0))


def _lease() -> timedelta:
    # Longer than one attempt can take (connect + read timeouts) with room to spare.
    return timedelta(seconds=float(getattr(settings, "NOTIFICATIONS_LEASE_SECONDS", 60.0)))


def retry_delay(failed_attempts: int) -> timedelta:
    """Delay after the n-th failed attempt: ~10 s, ~1 min, then doubling up to
    6 h, with ±20 % jitter so that deliveries failed together spread out."""
    if failed_attempts <= 1:
        seconds = 10.0
    else:
        seconds = min(6 * 3600.0, 60.0 * 2 ** (failed_attempts - 2))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


# --- the payload ----------------------------------------------------------------------


def event_payload(event: Event) -> dict:
    """The event as products see it, in deliveries and in the feed."""
    return {
        "id": str(event.pk),
        "type": event.type,
        "createdAt": iso_utc(event.created_at),
        "product": event.product.code,
        "data": event.data,
    }


def event_body(event: Event) -> bytes:
    return json.dumps(event_payload(event), separators=(",", ":"), sort_keys=True).encode()


# --- claiming ---------------------------------------------------------------------------


def deliveries_claim(
    *, limit: int, now: datetime, event_id=None, delivery_id=None
) -> tuple[list[uuid.UUID], uuid.UUID]:
    """Lease up to `limit` due deliveries of enabled endpoints to this worker.
    SKIP LOCKED lets concurrent workers take disjoint rows; the lease (not a
    held lock) keeps them ours while we send."""
    token = uuid.uuid4()
    with transaction.atomic():
        due = Delivery.objects.filter(
            Q(leased_until__isnull=True) | Q(leased_until__lt=now),
            status=DeliveryStatus.PENDING,
            next_attempt_at__lte=now,
            endpoint__enabled=True,
        )
        if event_id is not None:
            due = due.filter(event_id=event_id)
        if delivery_id is not None:
            due = due.filter(pk=delivery_id)
        ids = list(
            due.order_by("next_attempt_at")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            Delivery.objects.filter(pk__in=ids).update(leased_until=now + _lease(), lease_token=token)
    return ids, token


# --- sending ----------------------------------------------------------------------------


@dataclass
class AttemptOutcome:
    succeeded: bool
    status_code: int | None = None
    error: str = ""
    response_excerpt: str = ""
    duration_ms: int = 0
    gone: bool = False


def _connection(target, address: str, timeout: float) -> http.client.HTTPConnection:
    if target.scheme == "https":
        conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)

    # Connect to the address that passed the SSRF check (TLS still verifies
    # the certificate for the host name); no second DNS lookup.
    def create_connection(_address, conn_timeout=None, source_address=None):
        return socket.create_connection((address, target.port), conn_timeout, source_address)

    conn._create_connection = create_connection
    return conn


def _abort(conn: http.client.HTTPConnection) -> None:
    conn.aborted = True
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def attempt_send(*, url: str, secret: str, event_id: str, body: bytes) -> AttemptOutcome:
    """POST the signed body to `url` once. Never raises for the receiver's
    failures: they are the outcome."""
    started = time.monotonic()
    outcome = AttemptOutcome(succeeded=False)
    conn = None
    try:
        target = target_parse(url)
        addresses = target_addresses(target)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(secret=secret, body=body),
            EVENT_ID_HEADER: event_id,
        }
        conn = _connection(target, addresses[0], _timeout())
        # The socket timeout bounds each read; this bounds the whole attempt, so
        # a receiver that drips a byte at a time cannot outlive the lease.
        deadline = threading.Timer(_timeout() * 2, _abort, args=[conn])
        deadline.start()
        try:
            conn.request("POST", target.path, body=body, headers=headers)
            response = conn.getresponse()
            outcome.status_code = response.status
            outcome.response_excerpt = response.read(RESPONSE_EXCERPT_BYTES).decode("utf-8", errors="replace")
        finally:
            deadline.cancel()
            conn.close()
        outcome.succeeded = 200 <= response.status < 300
        outcome.gone = response.status == 410
        if not outcome.succeeded:
            outcome.error = f"HTTP {response.status}"
    except TargetRefused as refusal:
        outcome.error = f"Refused target: {refusal}"
    except (TimeoutError, socket.timeout):
        outcome.error = f"Timed out after {_timeout():g} s"
    except (OSError, http.client.HTTPException, ssl.SSLError) as error:
        if getattr(conn, "aborted", False):
            outcome.error = f"Timed out: no complete answer within {_timeout() * 2:g} s"
        else:
            outcome.error = f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    return outcome


# --- recording --------------------------------------------------------------------------


def _record(*, token, outcomes: list[tuple[uuid.UUID, AttemptOutcome, datetime]]) -> tuple[dict, set]:
    """Store the attempts of one worker and move their deliveries and
    endpoints on, in one transaction — only for the deliveries whose lease is
    still ours (another worker may have taken over a row after our lease
    ended: its attempt is its own). Returns ({delivery id: new status},
    {ids of endpoints disabled now})."""
    now = timezone.now()
    by_id = {delivery_id: (outcome, attempted_at) for delivery_id, outcome, attempted_at in outcomes}
    statuses: dict[uuid.UUID, str] = {}
    disabled: set = set()
    with transaction.atomic():
        deliveries = list(
            Delivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .filter(pk__in=list(by_id), lease_token=token, status=DeliveryStatus.PENDING)
            .order_by("pk")
        )
        attempts, retries, failed = [], [], []
        succeeded: dict[int, list] = {}  # status code → delivery ids
        endpoints: dict = {}
        for delivery in deliveries:
            outcome, attempted_at = by_id[delivery.pk]
            attempts.append(
                DeliveryAttempt(
                    delivery=delivery,
                    attempted_at=attempted_at,
                    succeeded=outcome.succeeded,
                    status_code=outcome.status_code,
                    duration_ms=outcome.duration_ms,
                    error=outcome.error[:MAX_ERROR_LENGTH],
                    response_excerpt=outcome.response_excerpt,
                )
            )
            delivery.attempts += 1
            delivery.last_status_code = outcome.status_code
            delivery.last_error = outcome.error[:MAX_ERROR_LENGTH]
            delivery.leased_until = None
            delivery.lease_token = None
            delivery.updated_at = now
            if outcome.succeeded:
                delivery.status = DeliveryStatus.SUCCEEDED
                delivery.delivered_at = attempted_at
                delivery.next_attempt_at = None
                succeeded.setdefault(outcome.status_code, []).append(delivery.pk)
            else:
                failed.append(delivery)
                next_at = now + retry_delay(delivery.attempts)
                if outcome.gone or next_at > delivery.retry_until:
                    delivery.status = DeliveryStatus.FAILED
                    delivery.next_attempt_at = None
                else:
                    delivery.next_attempt_at = next_at
                    if next_at - now <= timedelta(minutes=5):
                        retries.append((delivery.pk, (next_at - now).total_seconds()))
            # Per endpoint: did any attempt succeed, did any fail, was any a 410.
            seen = endpoints.setdefault(delivery.endpoint_id, {"endpoint": delivery.endpoint, "ok": False, "failed": False, "gone": False})
            seen["ok"] |= outcome.succeeded
            seen["failed"] |= not outcome.succeeded
            seen["gone"] |= outcome.gone
            statuses[delivery.pk] = delivery.status
        DeliveryAttempt.objects.bulk_create(attempts)
        # Successes share their new state: one UPDATE per status code.
        for status_code, delivery_ids in succeeded.items():
            Delivery.objects.filter(pk__in=delivery_ids).update(
                status=DeliveryStatus.SUCCEEDED,
                attempts=F("attempts") + 1,
                last_status_code=status_code,
                last_error="",
                leased_until=None,
                lease_token=None,
                delivered_at=now,
                next_attempt_at=None,
                updated_at=now,
            )
        for delivery in failed:
            delivery.save(update_fields=_RECORDED_FIELDS)
        # Endpoint rows in primary-key order: two workers recording for the
        # same endpoints lock them in the same order (no deadlock).
        for _, seen in sorted(endpoints.items(), key=lambda item: str(item[0])):
            if seen["gone"] or (seen["failed"] and not seen["ok"]):
                if _endpoint_failed(seen["endpoint"], now=now, gone=seen["gone"]):
                    disabled.add(seen["endpoint"].pk)
            elif seen["ok"]:
                # Conditional, so that a busy endpoint is not a hot row rewritten on every success.
                WebhookEndpoint.objects.filter(pk=seen["endpoint"].pk).filter(
                    Q(failing_since__isnull=False) | Q(last_success_at__isnull=True) | Q(last_success_at__lt=now - timedelta(minutes=1))
                ).update(failing_since=None, last_success_at=now)
        for delivery_id, delay in retries:
            transaction.on_commit(lambda delivery_id=delivery_id, delay=delay: _enqueue_retry(delivery_id, delay))
    return statuses, disabled


def _record_retrying(*, token, outcomes, attempts: int = 3):
    """`_record`, again if PostgreSQL picked it as a deadlock victim (it rolled
    back whole, so a retry records each attempt once)."""
    for attempt in range(attempts):
        try:
            return _record(token=token, outcomes=outcomes)
        except OperationalError as error:
            if attempt == attempts - 1 or getattr(error.__cause__, "sqlstate", None) != "40P01":
                raise
    raise AssertionError("unreachable")  # pragma: no cover


_RECORDED_FIELDS = [
    "attempts",
    "last_status_code",
    "last_error",
    "leased_until",
    "lease_token",
    "status",
    "delivered_at",
    "next_attempt_at",
    "updated_at",
]


def _endpoint_failed(endpoint: WebhookEndpoint, *, now: datetime, gone: bool) -> bool:
    """A 410 disables the endpoint at once; a run of failures that has lasted
    the retry window (three days) disables it too. True if disabled now."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
    failing_since = endpoint.failing_since or now
    if gone:
        reason = DisabledReason.GONE
    elif now - failing_since >= retry_window():
        reason = DisabledReason.FAILING
    else:
        return False
    updated = WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
        enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now
    )
    if updated:
        logger.warning("webhook endpoint disabled", extra={"endpointId": str(endpoint.pk), "reason": reason})
    return bool(updated)


def _enqueue_retry(delivery_id, delay: float) -> None:
    from ..tasks import deliver_one

    enqueue(deliver_one, str(delivery_id), countdown=delay)


# --- the pass -----------------------------------------------------------------------------


@dataclass
class DeliveryRunResult:
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0  # attempts that failed (retry scheduled or given up)
    batches: int = 0

    def as_dict(self) -> dict:
        return {"attempted": self.attempted, "succeeded": self.succeeded, "failed": self.failed, "batches": self.batches}


def deliveries_run(
    *,
    event_id=None,
    delivery_id=None,
    batch_size: int = 50,
    max_batches: int | None = None,
    time_budget_seconds: float | None = None,
) -> DeliveryRunResult:
    """Deliver due deliveries (of one event, one delivery, or all), batch by
    batch, until none is due, `max_batches` or the time budget is reached."""
    result = DeliveryRunResult()
    started = time.monotonic()
    # An attempt lasts at most twice the timeout (attempt_send's deadline):
    # stop sending from a batch while the lease still covers one more.
    lease_margin = 2 * _timeout() + 5.0
    while max_batches is None or result.batches < max_batches:
        if time_budget_seconds is not None and time.monotonic() - started > time_budget_seconds:
            break
        claimed_at = time.monotonic()
        ids, token = deliveries_claim(limit=batch_size, now=timezone.now(), event_id=event_id, delivery_id=delivery_id)
        if not ids:
            break
        result.batches += 1
        deliveries = Delivery.objects.filter(pk__in=ids, lease_token=token).select_related("event__product", "endpoint")
        pending: list = []
        disabled: set = set()
        unsent = set(ids)

        def flush() -> None:
            statuses, newly_disabled = _record_retrying(token=token, outcomes=pending)
            disabled.update(newly_disabled)
            for delivery_id_, outcome, _ in pending:
                if delivery_id_ not in statuses:
                    continue  # the lease was lost: another worker owns the row now
                result.attempted += 1
                if outcome.succeeded:
                    result.succeeded += 1
                else:
                    result.failed += 1
            pending.clear()

        for delivery in sorted(deliveries, key=lambda d: (d.event.created_at, d.pk)):
            if time.monotonic() - claimed_at > _lease().total_seconds() - lease_margin:
                break  # the rest is released below and claimed again
            if delivery.endpoint_id in disabled:
                continue
            attempted_at = timezone.now()
            outcome = attempt_send(
                url=delivery.endpoint.url,
                secret=delivery.endpoint.secret,
                event_id=str(delivery.event_id),
                body=event_body(delivery.event),
            )
            unsent.discard(delivery.pk)
            pending.append((delivery.pk, outcome, attempted_at))
            # Failures are recorded at once (they may disable the endpoint);
            # successes in groups, one transaction for many.
            if not outcome.succeeded or len(pending) >= RECORD_GROUP_SIZE:
                flush()
        if pending:
            flush()
        if unsent:
            Delivery.objects.filter(pk__in=list(unsent), lease_token=token).update(leased_until=None, lease_token=None)
    return result


def delivery_resend(*, delivery: Delivery, now: datetime | None = None) -> Delivery:
    """Send a delivery again (admin *Resend*): due now, with a fresh retry
    window, whatever its status. The endpoint must be enabled."""
    now = now or timezone.now()
    if not WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, enabled=True).exists():
        raise BadRequest("The endpoint is disabled; enable it before resending.")
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.PENDING,
        next_attempt_at=now,
        retry_until=now + retry_window(),
        leased_until=None,
        lease_token=None,
        updated_at=now,
    )
    delivery.refresh_from_db()
    delivery_id = delivery.pk
    transaction.on_commit(lambda: _enqueue_retry(delivery_id, 0))
    return delivery
