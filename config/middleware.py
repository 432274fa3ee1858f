import re
import uuid

from django.db import InterfaceError, OperationalError

from .api import error_response, is_api_request
from .errors import ERROR_CLASSES_BY_STATUS, ApplicationError, ServiceUnavailable
from .request_context import request_id_var, request_is_read_var

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestIdMiddleware:
    """Echoes `X-Request-Id` (or makes one) on every response and exposes it
    to logs. An id we cannot safely echo is replaced, not reflected."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        read_token = request_is_read_var.set(request.method in ("GET", "HEAD", "OPTIONS"))
        try:
            response = self.get_response(request)
        finally:
            request_is_read_var.reset(read_token)
            request_id_var.reset(token)
        response["X-Request-Id"] = request_id
        return response


class DatabaseUnavailableMiddleware:
    """A database outage outside DRF views (sessions, the admin's auth) still
    answers API callers with the 503 envelope instead of an HTML 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if is_api_request(request) and isinstance(exception, (OperationalError, InterfaceError)):
            return error_response(ServiceUnavailable(), request=request)
        return None


# Headers of an error response that still mean something in the envelope's.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


class JsonErrorsMiddleware:
    """The last line of SPEC §2's "every error has the envelope": an error
    response on a machine path (`/api/`, `/stripe/`, `/healthz`) that is not
    JSON — a plain Django view's 405, a decorator's 405, anything a
    third-party piece answers in HTML — is replaced by the envelope of its
    status (one ApplicationError class per status, config.errors)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
            and is_api_request(request)
        ):
            error_class = ERROR_CLASSES_BY_STATUS.get(response.status_code, ApplicationError)
            replaced = error_response(error_class(), request=request)
            replaced.status_code = response.status_code
            for name in _KEPT_HEADERS:
                if name in response:
                    replaced[name] = response[name]
            return replaced
        return response
