"""The error envelope of SPEC §2, for every error an API caller can see:
our ApplicationError, DRF's parse/validation/auth/throttle/405 errors,
Django's 404 and 500, and a database outage (503)."""

from __future__ import annotations

import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf

from config.errors import (
    ApplicationError,
    BadRequest,
    Forbidden,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)

logger = logging.getLogger("saasdesk.api")

API_PREFIX = "/api/"
# Paths a product, Stripe or a load balancer calls: their errors are JSON.
_MACHINE_PATHS = (API_PREFIX, "/stripe/", "/healthz")


def is_api_request(request) -> bool:
    return request.path.startswith(_MACHINE_PATHS)


def _request_id(request) -> str:
    return getattr(request, "request_id", "") or "-"


def error_response(error: ApplicationError, *, request=None, headers: dict | None = None) -> JsonResponse:
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "httpStatus": error.http_status,
            "details": error.details,
            "requestId": _request_id(request) if request is not None else "-",
        }
    }
    response = JsonResponse(body, status=error.http_status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _field_errors(detail) -> dict:
    """DRF's nested ErrorDetail structure → {"field": ["message", ...]}; nested
    objects and list items get dotted paths (`contacts.3.email`)."""
    fields: dict[str, list[str]] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            fields.setdefault(prefix or "nonFieldErrors", []).extend(str(v) for v in value)
        elif isinstance(value, list):
            for index, sub in enumerate(value):
                if sub:
                    walk(f"{prefix}.{index}" if prefix else str(index), sub)
        else:
            fields.setdefault(prefix or "nonFieldErrors", []).append(str(value))

    walk("", detail)
    # DRF's "non_field_errors" (also nested: "hints.non_field_errors") is about
    # the object itself: report it under the object's path.
    for key in [k for k in fields if k == "non_field_errors" or k.endswith(".non_field_errors")]:
        parent = key.rpartition(".")[0] or "nonFieldErrors"
        fields[parent] = fields.pop(key) + fields.get(parent, [])
    return fields


def _summary(fields: dict[str, list[str]]) -> str:
    first_field, messages = next(iter(fields.items()))
    if first_field == "nonFieldErrors":
        return messages[0]
    return f"{first_field}: {messages[0]}"


def to_application_error(exc: Exception) -> tuple[ApplicationError, dict]:
    """Map any exception to (ApplicationError, extra headers)."""
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        error = exc
    elif isinstance(exc, drf.ValidationError):
        fields = _field_errors(exc.detail)
        error = BadRequest(_summary(fields) if fields else "Invalid input.", details={"fields": fields})
    elif isinstance(exc, DjangoValidationError):
        fields = _field_errors(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
        error = BadRequest(_summary(fields), details={"fields": fields})
    elif isinstance(exc, RequestDataTooBig):
        error = PayloadTooLarge()
    elif isinstance(exc, drf.ParseError):
        error = BadRequest(f"Malformed request body: {exc.detail}")
    elif isinstance(exc, drf.UnsupportedMediaType):
        error = UnsupportedMediaType()
    elif isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        error = Unauthorized(str(exc.detail))
    elif isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        error = Forbidden()
    elif isinstance(exc, (drf.NotFound, Http404)):
        error = NotFound()
    elif isinstance(exc, drf.MethodNotAllowed):
        error = MethodNotAllowed(str(exc.detail))
    elif isinstance(exc, drf.NotAcceptable):
        error = NotAcceptable()
    elif isinstance(exc, drf.Throttled):
        wait = max(1, math.ceil(exc.wait or 1))
        error = TooManyRequests(f"Rate limit exceeded; retry in {wait} s.", details={"retryAfter": wait})
        headers["Retry-After"] = str(wait)
    elif isinstance(exc, DataError):
        # Input the database refused (a number out of range, a NUL byte): the
        # serializers should have caught it, but it is still the caller's input.
        logger.warning("database refused input", extra={"error": exc.__class__.__name__})
        error = BadRequest("A value is out of range or not storable.")
    elif isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("database unavailable", extra={"error": exc.__class__.__name__})
        error = ServiceUnavailable()
        headers["Retry-After"] = "1"
    else:
        logger.exception("unhandled error in API view")
        error = ApplicationError()
    return error, headers


def exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER: every error leaves as the SPEC §2 envelope."""
    request = context.get("request")
    error, headers = to_application_error(exc)
    response = error_response(error, request=request, headers=headers)
    view = context.get("view")
    if isinstance(exc, drf.MethodNotAllowed) and view is not None:
        response["Allow"] = ", ".join(view.allowed_methods)
    if error.http_status == 401:
        response["WWW-Authenticate"] = _authenticate_header(view, request)
    # Roll back whatever the failed request wrote inside an atomic block.
    from rest_framework.views import set_rollback

    set_rollback()
    return response


DEFAULT_AUTHENTICATE_HEADER = 'Bearer realm="api"'


def _authenticate_header(view, request) -> str:
    """RFC 7235: a 401 names the scheme to use — the view's first
    authentication class's (each class's `authenticate_header`), Bearer when
    there is no view."""
    if view is not None and request is not None:
        try:
            header = view.get_authenticate_header(request)
        except Exception:  # noqa: BLE001 - a header must never turn a 401 into a 500
            header = None
        if header:
            return header
    return DEFAULT_AUTHENTICATE_HEADER


def api_handler400(request, exception=None):
    """A SuspiciousOperation outside DRF, mostly a Host not in ALLOWED_HOSTS."""
    return error_response(BadRequest("Bad request (invalid Host header or request)."), request=request)


def api_handler403(request, exception=None):
    return error_response(Forbidden(), request=request)


def api_handler404(request, exception=None):
    return error_response(NotFound("No such endpoint."), request=request)


def api_handler500(request):
    return error_response(ApplicationError(), request=request)


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: API callers get the envelope, browsers Django's page.
    (API views are CSRF-exempt: they authenticate with a bearer key, not a cookie.)"""
    if is_api_request(request):
        return error_response(Forbidden("CSRF verification failed."), request=request)
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason=reason)
