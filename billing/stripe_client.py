"""The one place that talks to Stripe's SDK.

Every Stripe call of SaaSDesk goes through a `stripe.StripeClient` built here
from settings, so tests and benchmarks can point the official SDK at a local
fake server (`STRIPE_API_BASE`, `STRIPE_METER_EVENTS_API_BASE`). Errors are
mapped to our own hierarchy: without a key → StripeNotConfigured (503), Stripe
unreachable or failing → ServiceUnavailable (503, safe to retry). The API key
is never logged or put into an error message."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from typing import Any

import stripe
from django.conf import settings

from config.errors import Conflict, PaymentRequired, ServiceUnavailable, StripeNotConfigured

logger = logging.getLogger("saasdesk.billing.stripe")

# Synchronous calls (claim, link, webhook re-reads) must answer a product's
# request quickly; the SDK's own retries (with Stripe-Should-Retry and
# idempotency keys) cover a single transient blip.
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_NETWORK_RETRIES = 1

_clients: dict[tuple, stripe.StripeClient] = {}
_clients_lock = threading.Lock()


def stripe_is_configured() -> bool:
    return bool(settings.STRIPE_API_KEY)


def get_stripe_client() -> stripe.StripeClient:
    """A StripeClient for the current settings. Raises StripeNotConfigured when
    STRIPE_API_KEY is empty. Clients are cached per configuration (the SDK's
    requests-based HTTP client keeps one pooled session per thread)."""
    api_key = settings.STRIPE_API_KEY
    if not api_key:
        raise StripeNotConfigured()
    timeout = float(getattr(settings, "STRIPE_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))
    retries = int(getattr(settings, "STRIPE_MAX_NETWORK_RETRIES", DEFAULT_MAX_NETWORK_RETRIES))
    config_key = (api_key, settings.STRIPE_API_BASE, settings.STRIPE_METER_EVENTS_API_BASE, timeout, retries)
    client = _clients.get(config_key)
    if client is None:
        with _clients_lock:
            client = _clients.get(config_key)
            if client is None:
                client = stripe.StripeClient(
                    api_key=api_key,
                    base_addresses={
                        "api": settings.STRIPE_API_BASE,
                        "meter_events": settings.STRIPE_METER_EVENTS_API_BASE,
                    },
                    max_network_retries=retries,
                    http_client=stripe.RequestsClient(timeout=timeout),
                )
                _clients[config_key] = client
    return client


def is_transient(error: stripe.StripeError) -> bool:
    """Errors worth retrying later: network failures, rate limits, Stripe 5xx."""
    if isinstance(error, (stripe.APIConnectionError, stripe.RateLimitError)):
        return True
    status = getattr(error, "http_status", None) or 0
    return status == 429 or status >= 500


def is_missing(error: stripe.StripeError) -> bool:
    """Stripe answered 404 / resource_missing for the object asked for."""
    return isinstance(error, stripe.InvalidRequestError) and (
        getattr(error, "http_status", None) == 404 or getattr(error, "code", None) == "resource_missing"
    )


def stripe_retrieve_or_none(resource: Any, object_id: str, params: dict | None = None, *, operation: str) -> Any | None:
    """`resource.retrieve(object_id)` (e.g. `client.v1.invoices`) with the
    current state from Stripe, or None when Stripe no longer has the object;
    an outage is ServiceUnavailable as in `stripe_errors_as_unavailable`."""
    with stripe_errors_as_unavailable(operation):
        try:
            return resource.retrieve(object_id, params) if params else resource.retrieve(object_id)
        except stripe.InvalidRequestError as error:
            if is_missing(error):
                return None
            raise


def describe(error: stripe.StripeError) -> str:
    """A short, secret-free description of a Stripe error for logs and rows."""
    status = getattr(error, "http_status", None)
    code = getattr(error, "code", None)
    if isinstance(error, (stripe.AuthenticationError, stripe.PermissionError)):
        # Stripe echoes part of a rejected key in its message: never keep it.
        message = "Stripe refused the API key."
    else:
        message = getattr(error, "user_message", None) or str(getattr(error, "_message", "") or "")
        message = message or error.__class__.__name__
    parts = [error.__class__.__name__]
    if status:
        parts.append(f"HTTP {status}")
    if code:
        parts.append(str(code))
    return f"{' '.join(parts)}: {message}"[:1000]


@contextmanager
def stripe_errors_as_unavailable(operation: str) -> Iterator[None]:
    """For calls made while a caller waits: a Stripe outage, rate limit or an
    API key Stripe refuses becomes ServiceUnavailable (503, safe to retry).
    Services interpret the Stripe errors they expect inside the block (e.g. a
    404 of a retrieve); any other request Stripe refuses (say, a stored
    customer Stripe no longer has) becomes a 409 — our records and Stripe's
    disagree — instead of a 500. Card errors are left to
    `card_errors_as_payment_required`."""
    try:
        yield
    except (stripe.AuthenticationError, stripe.PermissionError) as error:
        logger.error("stripe refused our credentials", extra={"operation": operation, "error": describe(error)})
        raise ServiceUnavailable("Stripe refused SaaSDesk's API key; check STRIPE_API_KEY.") from error
    except stripe.StripeError as error:
        if is_transient(error):
            logger.warning("stripe unavailable", extra={"operation": operation, "error": describe(error)})
            raise ServiceUnavailable(
                "Stripe is unreachable or failing right now; it is safe to retry.",
                details={"operation": operation},
            ) from error
        if isinstance(error, stripe.InvalidRequestError) and not isinstance(error, stripe.IdempotencyError):
            logger.warning("stripe refused a request", extra={"operation": operation, "error": describe(error)})
            raise Conflict(
                getattr(error, "user_message", None)
                or "Stripe refused this request: the company's billing records and Stripe's disagree.",
                details={"operation": operation, "stripeCode": error.code},
            ) from error
        raise


@contextmanager
def card_errors_as_payment_required() -> Iterator[None]:
    """A card Stripe refused becomes PaymentRequired (402) with Stripe's
    `declineCode` and `code` in `details`, and Stripe's customer-facing
    message. Nothing about the card itself is logged or returned."""
    try:
        yield
    except stripe.CardError as error:
        body = getattr(error, "error", None)
        decline_code = getattr(body, "decline_code", None) if body is not None else None
        message = getattr(error, "user_message", None) or "The card was declined."
        logger.info("stripe declined a card", extra={"code": error.code, "decline_code": decline_code})
        raise PaymentRequired(message, details={"declineCode": decline_code or error.code, "code": error.code}) from error
