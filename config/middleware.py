import re
import uuid

from django.db import InterfaceError, OperationalError

from .api import error_response, is_api_request
from .errors import ServiceUnavailable
from .request_context import request_id_var

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
        try:
            response = self.get_response(request)
        finally:
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
