"""Bearer API key authentication. `request.auth` is an ApiPrincipal and
`request.user` stays None: products are not Django users.

Every authentication class of the API derives from `ThrottledAuthentication`:
it says whether the request carries its kind of credentials and checks them;
the base refuses an address that keeps failing (429, before any lookup) and
counts each failure (companies.api.throttling)."""

from __future__ import annotations

import time
from datetime import timedelta

from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, permissions

from config.cache import CacheUnavailable
from config.errors import Unauthorized

from ..api_keys import ApiPrincipal, hash_key, principal_for_key
from .throttling import key_rate_window, record_auth_failure, refuse_flooding_address, remember_rate_count

LAST_USED_RESOLUTION = timedelta(minutes=1)
_LAST_USED_SECONDS = LAST_USED_RESOLUTION.total_seconds()


class ThrottledAuthentication(authentication.BaseAuthentication):
    """Base of the API's authentication classes. Subclasses implement
    `has_credentials(request)` (does the request use this scheme?) and
    `authenticate_credentials(request)` (the `(user, principal)` pair, or
    raise Unauthorized), plus DRF's `authenticate_header`."""

    def has_credentials(self, request) -> bool:
        raise NotImplementedError

    def authenticate_credentials(self, request):
        raise NotImplementedError

    def authenticate(self, request):
        if not self.has_credentials(request):
            return None
        refuse_flooding_address(request)
        try:
            return self.authenticate_credentials(request)
        except Unauthorized:
            record_auth_failure(request)
            raise


class ApiKeyAuthentication(ThrottledAuthentication):
    def has_credentials(self, request) -> bool:
        return bool(request._request.META.get("HTTP_AUTHORIZATION", ""))

    def authenticate_credentials(self, request):
        header = request._request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != "bearer" or not raw_key.strip():
            raise Unauthorized("Authorization header must be 'Bearer <api key>'.")
        raw_key = raw_key.strip()
        # The key's rate-limit window, counted by the lookup itself when the
        # key is in Redis (one round trip for both; ApiKeyRateThrottle judges).
        window = key_rate_window(hash_key(raw_key)[:32])
        principal, count = principal_for_key(raw_key, counter=(window.key, window.ttl))
        if principal is None:
            # Same answer for malformed, unknown and revoked keys.
            raise Unauthorized("Invalid or revoked API key.")
        remember_rate_count(request, window, count)
        _touch_last_used(principal)
        return (None, principal)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


# key id -> monotonic time of this process's last stamp. Remembering it here
# saves a cache round trip on every request; across processes the cache.add
# below still keeps the database write to about once a minute per key.
_last_touched: dict = {}


def _touch_last_used(principal: ApiPrincipal) -> None:
    """Record last use at most once a minute per key, so a busy key does not
    turn every read into a write."""
    now = time.monotonic()
    if now - _last_touched.get(principal.key_id, float("-inf")) < _LAST_USED_SECONDS:
        return
    from ..models import ApiKey

    _last_touched[principal.key_id] = now
    try:
        first_this_minute = cache.add(f"apikey-used:{principal.key_id}", 1, int(LAST_USED_RESOLUTION.total_seconds()))
    except CacheUnavailable:
        first_this_minute = True  # still at most once a minute per process (above)
    if first_this_minute:
        ApiKey.objects.filter(pk=principal.key_id).update(last_used_at=timezone.now())


class HasApiKey(permissions.BasePermission):
    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiPrincipal):
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <api key>'.")
        return True


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "companies.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "Product API key `os_sk_…`"}
