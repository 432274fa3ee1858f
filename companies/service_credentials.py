"""Signed service requests (SPEC §7): the signing string, the secret format,
the cached credential lookup and nonce replay protection.

    X-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{nonce}.{METHOD}.{path}.{sha256hex(body)}")>

`path` is the request path as sent, with `/api/v1` and the query string."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.cache import CacheUnavailable, delete_eventually

from .api_keys import ApiPrincipal

logger = logging.getLogger("saasdesk.auth")

SECRET_PREFIX = "os_ss_"
MAX_SKEW_SECONDS = 300
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9._~:-]{8,128}$")
SERVICE_NAME_PATTERN = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")
LOOKUP_CACHE_SECONDS = 60


@dataclass(frozen=True)
class ServicePrincipal(ApiPrincipal):
    """A signed request: the credential (as `key_id`), its product and service."""

    service_name: str = ""


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signing_string(*, timestamp: str, nonce: str, method: str, path: str, body: bytes) -> bytes:
    return f"{timestamp}.{nonce}.{method.upper()}.{path}.{hashlib.sha256(body).hexdigest()}".encode()


def sign(*, secret: str, timestamp: str, nonce: str, method: str, path: str, body: bytes = b"") -> str:
    """The X-Signature header value (what a client computes; used by tests and the bench)."""
    message = signing_string(timestamp=timestamp, nonce=nonce, method=method, path=path, body=body)
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _candidates_cache_key(service_name: str) -> str:
    return f"svccred:{service_name}"


def active_credentials(service_name: str) -> list[tuple]:
    """(id, product id, product code, secret) of the active credentials of a
    service name (several while a secret is rotated, or when two products use
    one name: the signature tells which). Cached briefly; revoking clears it."""
    from .models import ServiceCredential

    key = _candidates_cache_key(service_name)
    try:
        cached = cache.get(key)
    except CacheUnavailable:  # read the database (the backend logged the outage once)
        cached = None
    if cached:
        return cached
    rows = list(
        ServiceCredential.objects.filter(service_name=service_name, revoked_at__isnull=True).values_list(
            "id", "product_id", "product__code", "secret"
        )
    )
    # Unknown names are not cached: random names must not grow the cache (the
    # per-address failure throttle bounds their lookups instead).
    if rows:
        try:
            cache.set(key, rows, LOOKUP_CACHE_SECONDS)
        except CacheUnavailable:
            pass
    return rows


def forget_service(service_name: str) -> None:
    """Drop the cached credentials now, or as soon as Redis is back."""
    delete_eventually([_candidates_cache_key(service_name)])


def verify(*, service_name: str, timestamp: str, nonce: str, signature: str, method: str, path: str, body: bytes):
    """The ServicePrincipal of a valid signed request, or an error message.
    Checks the clock skew, the signature (constant time) and then the nonce,
    so that unsigned junk never fills the nonce store."""
    if not SERVICE_NAME_PATTERN.match(service_name):
        return "Malformed X-Service-Name."
    if not timestamp.isdigit():
        return "X-Timestamp must be Unix seconds."
    if abs(time.time() - int(timestamp)) > MAX_SKEW_SECONDS:
        return "X-Timestamp is more than 5 minutes off."
    if not NONCE_PATTERN.match(nonce):
        return "X-Nonce must be 8–128 URL-safe characters."
    message = signing_string(timestamp=timestamp, nonce=nonce, method=method, path=path, body=body)
    for credential_id, product_id, product_code, secret in active_credentials(service_name):
        expected = "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, signature):
            if not nonce_first_use(credential_id=credential_id, nonce=nonce):
                return "This nonce was already used."
            return ServicePrincipal(credential_id, product_id, product_code, service_name=service_name)
    return "Invalid signature."


def nonce_first_use(*, credential_id, nonce: str) -> bool:
    """True the first time a nonce is seen for a credential within the skew
    window. In the cache (one atomic add); in the database when the cache is
    unreachable (SPEC §2: Redis down must not stop the API)."""
    ttl = 2 * MAX_SKEW_SECONDS + 5
    try:
        return bool(cache.add(f"svcnonce:{credential_id}:{nonce}", 1, ttl))
    except CacheUnavailable:
        pass  # checked in the database below (the backend logged the outage once)
    from .models import ServiceNonce

    try:
        with transaction.atomic():
            ServiceNonce.objects.create(credential_id=credential_id, nonce=nonce)
    except IntegrityError:
        return False
    return True


def service_nonces_prune(*, now=None) -> int:
    """Drop database nonces older than any timestamp that could still pass."""
    from .models import ServiceNonce

    cutoff = (now or timezone.now()) - timedelta(seconds=2 * MAX_SKEW_SECONDS + 5)
    deleted, _ = ServiceNonce.objects.filter(seen_at__lt=cutoff).delete()
    return deleted
