"""The one error hierarchy of SaaSDesk.

Services raise these; the API's exception handler (`config.api`) turns them
into the error envelope of SPEC §2, and the admin shows their `message`.
Nothing here knows about HTTP requests — `http_status` is only a mapping."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    code = "INTERNAL_SERVER_ERROR"
    http_status = 500
    default_message = "Internal server error."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class BadRequest(ApplicationError):
    code = "BAD_REQUEST"
    http_status = 400
    default_message = "Invalid input."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        super().__init__(message, details=details)
        # Every 400 names what was wrong (SPEC §2, and one shape for clients):
        # input that is not about one field is reported under `nonFieldErrors`.
        self.details.setdefault("fields", {"nonFieldErrors": [self.message]})

    @classmethod
    def for_field(cls, field: str, message: str) -> BadRequest:
        """A 400 that names the offending field, like a serializer error."""
        return cls(message, details={"fields": {field: [message]}})


class Unauthorized(ApplicationError):
    code = "UNAUTHORIZED"
    http_status = 401
    default_message = "Missing or invalid credentials."


class PaymentRequired(ApplicationError):
    code = "PAYMENT_REQUIRED"
    http_status = 402
    default_message = "Not enough credits."


class Forbidden(ApplicationError):
    code = "FORBIDDEN"
    http_status = 403
    default_message = "Not allowed."


class NotFound(ApplicationError):
    code = "NOT_FOUND"
    http_status = 404
    default_message = "Not found."


class Conflict(ApplicationError):
    code = "CONFLICT"
    http_status = 409
    default_message = "Conflict."


class PreconditionFailed(ApplicationError):
    code = "PRECONDITION_FAILED"
    http_status = 412
    default_message = "Precondition failed."


class Locked(ApplicationError):
    code = "LOCKED"
    http_status = 423
    default_message = "Locked."


class TooManyRequests(ApplicationError):
    code = "TOO_MANY_REQUESTS"
    http_status = 429
    default_message = "Too many requests."


class ServiceUnavailable(ApplicationError):
    code = "SERVICE_UNAVAILABLE"
    http_status = 503
    default_message = "A backing service is unavailable; it is safe to retry."


class StripeNotConfigured(ServiceUnavailable):
    default_message = "Stripe is not configured (set STRIPE_API_KEY)."
