"""Signatures of webhook deliveries, Stripe's scheme (SPEC §11):

    SaaSDesk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>

`signature_verify` is the receiver's side, the same ten lines that
docs/notifications.md shows; the tests check deliveries with it."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "SaaSDesk-Signature"
EVENT_ID_HEADER = "SaaSDesk-Event-Id"
DEFAULT_TOLERANCE_SECONDS = 300


def endpoint_secret_generate() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature_compute(*, secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={signature_compute(secret=secret, timestamp=timestamp, body=body)}"


def signature_verify(
    *, secret: str, header: str, body: bytes, tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None
) -> bool:
    """True if `header` signs `body` with `secret` and is at most `tolerance`
    seconds old (a replayed old request is refused)."""
    try:
        pairs = [item.split("=", 1) for item in header.split(",")]
        timestamp = int(next(value for key, value in pairs if key == "t"))
        candidates = [value for key, value in pairs if key == "v1"]
    except (ValueError, StopIteration):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature_compute(secret=secret, timestamp=timestamp, body=body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
