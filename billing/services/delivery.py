"""Usage → Stripe Billing Meters, through the v2 meter event stream.

Contract (SPEC §6): never inside an API request, never lost, never double-billed.

- Work is claimed with `SELECT … FOR UPDATE SKIP LOCKED` and the row locks are
  held while the batch is sent: any number of workers can run, and a worker
  that dies mid-batch releases its rows (the transaction aborts) so another
  one re-sends them.
- What makes a re-send harmless is the meter event `identifier`: it is stable
  (the usage event's own identifier, else its id) and Stripe ignores an
  identifier it has already seen within 24 hours. The whole backoff schedule
  stays far inside that window.
- 429/5xx/network errors back off exponentially per event; after the last
  attempt the event is `failed` with the error (retryable from the admin).
- Events older than Stripe's 35-day window fail with that reason; without a
  Stripe key nothing is claimed and events wait as `pending`.
- The delivery columns belong to metering: claims and outcomes go through
  `metering.services.delivery`; billing never updates usage events itself."""

from __future__ import annotations

import logging
import random
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.models import BillingProfile
from billing.stripe_client import describe, get_stripe_client, is_transient, stripe_is_configured
from entitlements.models import Feature
from metering.services.delivery import (
    ClaimedUsageEvent,
    usage_deliveries_claim,
    usage_deliveries_delivered,
    usage_deliveries_failed,
    usage_deliveries_retry_later,
)

logger = logging.getLogger("saasdesk.billing.delivery")

STREAM_MAX_EVENTS = 100  # Stripe's limit per meter_event_stream request
METER_EVENT_WINDOW = timedelta(days=35)
# Leave room for the time a batch spends in flight: an event 35 days minus a
# few seconds old would be refused by Stripe asynchronously, i.e. silently.
METER_EVENT_WINDOW_MARGIN = timedelta(minutes=5)
SESSION_RENEW_MARGIN = timedelta(seconds=60)

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BACKOFF_BASE_SECONDS = 30.0
DEFAULT_BACKOFF_MAX_SECONDS = 3600.0

TOO_OLD_ERROR = "Older than Stripe's 35-day meter event window; Stripe would reject it."


@dataclass
class DeliveryResult:
    delivered: int = 0
    retry_scheduled: int = 0
    failed: int = 0
    requests: int = 0
    batches: int = 0
    configured: bool = True
    stopped: bool = False  # Stripe refused our credentials; the rest waits
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "delivered": self.delivered,
            "retryScheduled": self.retry_scheduled,
            "failed": self.failed,
            "requests": self.requests,
            "batches": self.batches,
            "configured": self.configured,
            "stopped": self.stopped,
        }


def _max_attempts() -> int:
    return int(getattr(settings, "BILLING_DELIVERY_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))


def backoff_delay(attempts: int) -> timedelta:
    """Delay before attempt `attempts + 1`: base·2^(attempts−1), capped, ±20 % jitter
    so that events failed together do not retry in lockstep."""
    base = float(getattr(settings, "BILLING_DELIVERY_BACKOFF_BASE_SECONDS", DEFAULT_BACKOFF_BASE_SECONDS))
    cap = float(getattr(settings, "BILLING_DELIVERY_BACKOFF_MAX_SECONDS", DEFAULT_BACKOFF_MAX_SECONDS))
    seconds = min(cap, base * (2 ** max(0, attempts - 1)))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


# --- meter event session (auth token for the stream) --------------------------------

_sessions: dict[tuple, tuple[str, datetime]] = {}
_sessions_lock = threading.Lock()


def _session_key() -> tuple:
    return (settings.STRIPE_API_KEY, settings.STRIPE_API_BASE, settings.STRIPE_METER_EVENTS_API_BASE)


def _parse_expiry(value) -> datetime:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def meter_event_session_token(client: stripe.StripeClient, *, renew: bool = False) -> str:
    """A cached meter event session token, renewed shortly before it expires
    (sessions last 15 minutes) or when `renew` (Stripe said it expired)."""
    key = _session_key()
    now = timezone.now()
    with _sessions_lock:
        cached = _sessions.get(key)
        if cached and not renew and cached[1] - SESSION_RENEW_MARGIN > now:
            return cached[0]
        session = client.v2.billing.meter_event_session.create()
        token, expires_at = session.authentication_token, _parse_expiry(session.expires_at)
        _sessions[key] = (token, expires_at)
        return token


def meter_event_sessions_forget() -> None:
    with _sessions_lock:
        _sessions.clear()


def _session_expired(error: stripe.StripeError) -> bool:
    return isinstance(error, stripe.TemporarySessionExpiredError) or (
        getattr(error, "code", None) == "billing_meter_event_session_expired"
    )


def _stream_send(client: stripe.StripeClient, events: list[dict]) -> None:
    """POST one ≤100-event batch to the stream, renewing the session once if
    Stripe says the token expired. Raises stripe.StripeError."""
    token = meter_event_session_token(client)
    try:
        client.v2.billing.meter_event_stream.create(params={"events": events}, options={"api_key": token})
    except stripe.StripeError as error:
        if not _session_expired(error):
            raise
        token = meter_event_session_token(client, renew=True)
        client.v2.billing.meter_event_stream.create(params={"events": events}, options={"api_key": token})


# --- the delivery pass ----------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class _Lookups:
    """Per pass: the Stripe customer of each account (company × the feature's
    product: billing is per product, SPEC §2) and the meter event name of
    each feature (metering fills the latter while claiming), read once for
    the ids a batch needs (a pass is short-lived, so a rename in between is
    picked up by the next one)."""

    def __init__(self) -> None:
        self.meter_event_names: dict = {}
        self.feature_products: dict = {}
        self.customers: dict = {}

    def load(self, events: list[ClaimedUsageEvent]) -> None:
        features = {event.feature_id for event in events} - self.feature_products.keys()
        if features:
            self.feature_products.update(Feature.objects.filter(pk__in=features).values_list("pk", "product_id"))
        accounts = {(event.company_id, self.feature_products[event.feature_id]) for event in events}
        companies = {company_id for company_id, _ in accounts - self.customers.keys()}
        if companies:
            for company_id, product_id, customer_id in BillingProfile.objects.filter(
                company_id__in=companies
            ).values_list("company_id", "product_id", "stripe_customer_id"):
                self.customers[(company_id, product_id)] = customer_id

    def customer_for(self, event: ClaimedUsageEvent) -> str:
        return self.customers[(event.company_id, self.feature_products[event.feature_id])]


def deliver_pending_usage(*, batch_size: int = 100, max_batches: int | None = None, worker: str = "") -> DeliveryResult:
    """Deliver every due pending usage event of companies with a Stripe customer,
    claiming `batch_size` events per transaction, until none is left (or
    `max_batches`). Returns counts. Without STRIPE_API_KEY it does nothing."""
    result = DeliveryResult()
    if not stripe_is_configured():
        result.configured = False
        return result
    client = get_stripe_client()
    batch_size = max(1, batch_size)
    lookups = _Lookups()
    fresh_after: datetime | None = None
    while max_batches is None or result.batches < max_batches:
        # Retries that come due during a pass wait for the next pass (the
        # shortest backoff is far longer than a claim), so only the first
        # claim of a pass looks for them.
        claimed, fresh_after = _deliver_one_batch(
            client,
            batch_size=batch_size,
            result=result,
            lookups=lookups,
            fresh_after=fresh_after,
            include_due=result.batches == 0,
        )
        if claimed < batch_size or result.stopped:
            break
    if result.delivered or result.failed or result.retry_scheduled:
        logger.info("usage delivered to stripe", extra={"worker": worker, **result.as_dict()})
    return result


def _deliver_one_batch(
    client: stripe.StripeClient,
    *,
    batch_size: int,
    result: DeliveryResult,
    lookups: _Lookups,
    fresh_after: datetime | None,
    include_due: bool,
) -> tuple[int, datetime | None]:
    """Claim, send and record one batch. Returns (rows claimed, newest
    created_at of the never-tried rows claimed, for the next claim)."""
    now = timezone.now()
    with transaction.atomic():
        # The row locks are the claim: they keep every other worker off these
        # events until this transaction records the outcome (or dies, and
        # PostgreSQL releases them for the next worker).
        claim = usage_deliveries_claim(
            # Accounts without a Stripe customer are not claimed: their usage waits.
            company_ids=BillingProfile.objects.values("company_id"),
            accounts=BillingProfile.objects.all(),
            now=now,
            batch_size=batch_size,
            fresh_after=fresh_after,
            include_due=include_due,
            meter_event_names=lookups.meter_event_names,
        )
        events, fresh_after = claim.events, claim.fresh_after
        if not claim.locked:
            return 0, fresh_after
        result.batches += 1
        lookups.load(events)
        oldest_allowed = now - METER_EVENT_WINDOW + METER_EVENT_WINDOW_MARGIN
        too_old, sendable = [], []
        for event in events:
            if event.event_time < oldest_allowed:
                too_old.append(event)
                continue
            sendable.append(
                _Pending(
                    event_id=event.id,
                    event_time=event.event_time,
                    attempts=event.stripe_delivery_attempts,
                    meter_event={
                        "event_name": event.meter_event_name,
                        "identifier": event.stripe_event_identifier or str(event.id),
                        "timestamp": _iso(event.event_time),
                        "payload": {
                            "stripe_customer_id": lookups.customer_for(event),
                            "value": str(event.billable_delta),
                        },
                    },
                )
            )
        if too_old:
            usage_deliveries_failed(
                event_ids=[event.id for event in too_old],
                event_times=[event.event_time for event in too_old],
                error=TOO_OLD_ERROR,
                attempted=False,
            )
            result.failed += len(too_old)
        delivered: list[_Pending] = []
        try:
            for start in range(0, len(sendable), STREAM_MAX_EVENTS):
                delivered += _send_chunk(client, sendable[start : start + STREAM_MAX_EVENTS], result=result)
        except _CredentialsRefused:
            # Not the events' fault: they stay pending, untouched, for when
            # the key is fixed. Stop this pass.
            result.stopped = True
        if delivered:
            usage_deliveries_delivered(
                event_ids=[pending.event_id for pending in delivered],
                event_times=[pending.event_time for pending in delivered],
                at=timezone.now(),
            )
            result.delivered += len(delivered)
        return claim.locked, fresh_after


class _CredentialsRefused(Exception):
    pass


@dataclass(frozen=True)
class _Pending:
    event_id: object
    event_time: datetime  # the partition key: outcomes update only its partitions
    attempts: int
    meter_event: dict


def _send_chunk(client: stripe.StripeClient, chunk: list[_Pending], *, result: DeliveryResult) -> list[_Pending]:
    """Send ≤100 events; returns those Stripe accepted (all or none). On
    failure, records the backoff or the failure on the events themselves."""
    ids = [pending.event_id for pending in chunk]
    result.requests += 1
    try:
        _stream_send(client, [pending.meter_event for pending in chunk])
    except stripe.StripeError as error:
        message = describe(error)
        result.errors.append(message)
        if isinstance(error, (stripe.AuthenticationError, stripe.PermissionError)) and not _session_expired(error):
            logger.error("stripe refused our credentials; usage stays pending", extra={"error": message})
            raise _CredentialsRefused() from error
        if is_transient(error):
            _schedule_retry(chunk, message=message, result=result)
        else:
            # The stream validates the request synchronously and each event
            # asynchronously, so a 4xx here is about the batch as a whole
            # (credentials, shape): nothing was recorded; staff can retry.
            logger.error("stripe refused a meter event batch", extra={"error": message, "events": len(ids)})
            usage_deliveries_failed(event_ids=ids, event_times=[pending.event_time for pending in chunk], error=message)
            result.failed += len(ids)
        return []
    return chunk


def _schedule_retry(chunk: list[_Pending], *, message: str, result: DeliveryResult) -> None:
    max_attempts = _max_attempts()
    now = timezone.now()
    by_attempts: dict[int, list[_Pending]] = defaultdict(list)
    for pending in chunk:
        by_attempts[pending.attempts + 1].append(pending)
    for attempts, group in by_attempts.items():
        ids, times = [pending.event_id for pending in group], [pending.event_time for pending in group]
        if attempts >= max_attempts:
            usage_deliveries_failed(
                event_ids=ids, event_times=times, error=f"Gave up after {attempts} attempts: {message}", attempts=attempts
            )
            result.failed += len(ids)
        else:
            usage_deliveries_retry_later(
                event_ids=ids,
                event_times=times,
                attempts=attempts,
                error=message,
                next_attempt_at=now + backoff_delay(attempts),
            )
            result.retry_scheduled += len(ids)
