"""The one error hierarchy of SaaSDesk.

Services raise these; the API's exception handler (`config.api`) turns them
into the error envelope of SPEC §2, and the admin shows their `message`.
Nothing here knows about HTTP requests — `http_status` is only a mapping.

Two kinds of codes, as in Saleor:
- `ErrorCode` is the closed set of envelope codes (`error.code`), one per
  HTTP status. Every status has its own class below; nothing mutates an
  instance's code or status.
- Each app keeps an `error_codes.py` enum (`CompaniesErrorCode`, …) of the
  machine-readable reasons of its own failures. An error raised with a
  `reason` carries it as `details.reason`, so a client can tell two 400s
  (or two 423s) apart without parsing the message."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    """Envelope codes (`error.code`) of SPEC §2, one per HTTP status."""

    BAD_REQUEST = "BAD_REQUEST"
    UNAUTHORIZED = "UNAUTHORIZED"
    PAYMENT_REQUIRED = "PAYMENT_REQUIRED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    NOT_ACCEPTABLE = "NOT_ACCEPTABLE"
    CONFLICT = "CONFLICT"
    PRECONDITION_FAILED = "PRECONDITION_FAILED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    LOCKED = "LOCKED"
    TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"


class ApplicationError(Exception):
    """Base of every error a caller may see. Subclasses set `code`,
    `http_status` and `default_message`; an app's domain error may also set a
    class-level `reason` from its `error_codes.py` enum."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_SERVER_ERROR
    http_status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal server error."
    reason: StrEnum | None = None

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        reason: StrEnum | None = None,
    ):
        self.message = message or self.default_message
        self.details = dict(details or {})
        if reason is not None:
            self.reason = reason
        if self.reason is not None:
            self.details.setdefault("reason", str(self.reason))
        super().__init__(self.message)


class BadRequest(ApplicationError):
    code = ErrorCode.BAD_REQUEST
    http_status = 400
    default_message = "Invalid input."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(message, details=details, **kwargs)
        # Every 400 names what was wrong (SPEC §2, and one shape for clients):
        # input that is not about one field is reported under `nonFieldErrors`.
        self.details.setdefault("fields", {"nonFieldErrors": [self.message]})

    @classmethod
    def for_field(cls, field: str, message: str, **kwargs: Any) -> BadRequest:
        """A 400 that names the offending field, like a serializer error."""
        return cls(message, details={"fields": {field: [message]}}, **kwargs)


class Unauthorized(ApplicationError):
    code = ErrorCode.UNAUTHORIZED
    http_status = 401
    default_message = "Missing or invalid credentials."


class PaymentRequired(ApplicationError):
    code = ErrorCode.PAYMENT_REQUIRED
    http_status = 402
    default_message = "Not enough credits."


class Forbidden(ApplicationError):
    code = ErrorCode.FORBIDDEN
    http_status = 403
    default_message = "Not allowed."


class NotFound(ApplicationError):
    code = ErrorCode.NOT_FOUND
    http_status = 404
    default_message = "Not found."


class MethodNotAllowed(ApplicationError):
    code = ErrorCode.METHOD_NOT_ALLOWED
    http_status = 405
    default_message = "Method not allowed."


class NotAcceptable(ApplicationError):
    code = ErrorCode.NOT_ACCEPTABLE
    http_status = 406
    default_message = "This endpoint answers application/json only."


class Conflict(ApplicationError):
    code = ErrorCode.CONFLICT
    http_status = 409
    default_message = "Conflict."


class PreconditionFailed(ApplicationError):
    code = ErrorCode.PRECONDITION_FAILED
    http_status = 412
    default_message = "Precondition failed."


class PayloadTooLarge(ApplicationError):
    code = ErrorCode.PAYLOAD_TOO_LARGE
    http_status = 413
    default_message = "Request body too large."


class UnsupportedMediaType(ApplicationError):
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE
    http_status = 415
    default_message = "Send the body as application/json."


class Locked(ApplicationError):
    code = ErrorCode.LOCKED
    http_status = 423
    default_message = "Locked."


class TooManyRequests(ApplicationError):
    code = ErrorCode.TOO_MANY_REQUESTS
    http_status = 429
    default_message = "Too many requests."


class ServiceUnavailable(ApplicationError):
    code = ErrorCode.SERVICE_UNAVAILABLE
    http_status = 503
    default_message = "A backing service is unavailable; it is safe to retry."


class StripeNotConfigured(ServiceUnavailable):
    default_message = "Stripe is not configured (set STRIPE_API_KEY)."


ERROR_CLASSES_BY_STATUS: dict[int, type[ApplicationError]] = {
    cls.http_status: cls
    for cls in (
        BadRequest, Unauthorized, PaymentRequired, Forbidden, NotFound, MethodNotAllowed, NotAcceptable,
        Conflict, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Locked, TooManyRequests,
        ApplicationError, ServiceUnavailable,
    )
}
