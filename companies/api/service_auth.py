"""HMAC-signed service requests (SPEC §7), the second way to authenticate:
`X-Service-Name`, `X-Timestamp`, `X-Nonce`, `X-Signature`. `request.auth`
is a ServicePrincipal (an ApiPrincipal with the service name), so every
endpoint and permission that accepts an API key accepts a signed service."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from config.errors import Unauthorized

from ..service_credentials import verify
from .auth import ThrottledAuthentication

_HEADERS = ("HTTP_X_SERVICE_NAME", "HTTP_X_TIMESTAMP", "HTTP_X_NONCE", "HTTP_X_SIGNATURE")


class ServiceSignatureAuthentication(ThrottledAuthentication):
    def has_credentials(self, request) -> bool:
        return any(request.META.get(name, "").strip() for name in _HEADERS)

    def authenticate_credentials(self, request):
        values = [request.META.get(name, "").strip() for name in _HEADERS]
        if not all(values):
            raise Unauthorized("Signed requests need X-Service-Name, X-Timestamp, X-Nonce and X-Signature.")
        service_name, timestamp, nonce, signature = values
        django_request = request._request
        outcome = verify(
            service_name=service_name,
            timestamp=timestamp,
            nonce=nonce,
            signature=signature,
            method=django_request.method,
            path=django_request.get_full_path(),
            body=django_request.body,
        )
        if isinstance(outcome, str):
            raise Unauthorized(outcome)
        return (None, outcome)

    def authenticate_header(self, request):
        return 'HMAC-SHA256 realm="api"'


class ServiceSignatureScheme(OpenApiAuthenticationExtension):
    target_class = "companies.api.service_auth.ServiceSignatureAuthentication"
    name = "ServiceSignature"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-Signature",
            "description": "`v1=<hex HMAC-SHA256(secret, \"{timestamp}.{nonce}.{METHOD}.{path}.{sha256hex(body)}\")>` "
            "with X-Service-Name, X-Timestamp (Unix seconds, ±5 min) and X-Nonce (once).",
        }
