"""API key format, hashing and the cached key lookup used on every request."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from uuid import UUID

from django.core.cache import cache

KEY_PREFIX = "os_sk_"
KEY_PATTERN = re.compile(r"^os_sk_[A-Za-z0-9_-]{32,128}$")
# Revocation deletes the cache entry, so this TTL only bounds how long a key
# deleted straight from the database keeps working.
LOOKUP_CACHE_SECONDS = 60


@dataclass(frozen=True)
class ApiPrincipal:
    """Who is calling: the key and the product it belongs to (request.auth)."""

    key_id: UUID
    product_id: UUID
    product_code: str


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 43 URL-safe characters, 256 bits


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _cache_key(key_hash: str) -> str:
    return f"apikey:{key_hash}"


def principal_for_key(raw_key: str) -> ApiPrincipal | None:
    """The principal of an active key, or None. Cached by hash: this runs on
    every API request."""
    from .models import ApiKey

    if not KEY_PATTERN.match(raw_key):
        return None
    key_hash = hash_key(raw_key)
    cached = cache.get(_cache_key(key_hash))
    if cached is not None:
        return ApiPrincipal(*cached) if cached else None
    key = (
        ApiKey.objects.select_related("product")
        .filter(key_hash=key_hash, revoked_at__isnull=True)
        .only("id", "product_id", "product__code")
        .first()
    )
    principal = ApiPrincipal(key.id, key.product_id, key.product.code) if key else None
    cache.set(
        _cache_key(key_hash),
        (principal.key_id, principal.product_id, principal.product_code) if principal else (),
        LOOKUP_CACHE_SECONDS,
    )
    return principal


def forget_key(key_hash: str) -> None:
    cache.delete(_cache_key(key_hash))
