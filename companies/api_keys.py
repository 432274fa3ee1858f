"""API key format, hashing and the cached key lookup used on every request."""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from uuid import UUID

from django.core.cache import cache

from config.cache import CacheUnavailable, delete_eventually, get_and_count

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
    # The key's name, the label of every audit row the key writes (one label
    # per key everywhere: tracks, corrections, access changes).
    key_name: str = ""


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 43 URL-safe characters, 256 bits


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _cache_key(key_hash: str) -> str:
    return f"apikey:{key_hash}"


class _UnknownKeys:
    """Hashes recently looked up and not found, in process memory: a bounded,
    write-free negative cache (an unknown key must not cost a cache entry —
    random keys would grow Redis without bound — nor a database write). The
    per-address failure throttle bounds how many lookups reach the database
    in the first place. A hash that was unknown stays unknown: keys are
    random, and a revoked key never comes back."""

    MAX_ENTRIES = 4096

    def __init__(self):
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key_hash: str) -> bool:
        seen_at = self._seen.get(key_hash)
        return seen_at is not None and time.monotonic() - seen_at < LOOKUP_CACHE_SECONDS

    def add(self, key_hash: str) -> None:
        with self._lock:
            self._seen[key_hash] = time.monotonic()
            self._seen.move_to_end(key_hash)
            while len(self._seen) > self.MAX_ENTRIES:
                self._seen.popitem(last=False)


_unknown_keys = _UnknownKeys()


def principal_for_key(raw_key: str, *, counter: tuple[str, int] | None = None) -> tuple[ApiPrincipal | None, int | None]:
    """(principal, count): the principal of an active key, or None. Cached by
    hash in Redis (this runs on every API request); read from PostgreSQL
    while Redis is down. With `counter` = (counter key, TTL), a key found in
    Redis also increments that counter in the same round trip (the key's
    rate limit) and `count` is its new value; otherwise `count` is None and
    the caller counts on its own."""
    from .models import ApiKey

    if not KEY_PATTERN.match(raw_key):
        return None, None
    key_hash = hash_key(raw_key)
    if key_hash in _unknown_keys:
        return None, None
    cache_up = True
    try:
        if counter is None:
            cached, count = cache.get(_cache_key(key_hash)), None
        else:
            cached, count = get_and_count(_cache_key(key_hash), *counter)
    except CacheUnavailable:
        cache_up, cached, count = False, None, None
    if cached:
        return ApiPrincipal(*cached), count
    key = (
        ApiKey.objects.select_related("product")
        .filter(key_hash=key_hash, revoked_at__isnull=True)
        .only("id", "name", "product_id", "product__code")
        .first()
    )
    if key is None:
        _unknown_keys.add(key_hash)
        return None, None
    principal = ApiPrincipal(key.id, key.product_id, key.product.code, key.name)
    if cache_up:
        with contextlib.suppress(CacheUnavailable):
            cache.set(
                _cache_key(key_hash),
                (principal.key_id, principal.product_id, principal.product_code, principal.key_name),
                LOOKUP_CACHE_SECONDS,
            )
    return principal, None


def forget_key(key_hash: str) -> None:
    """After a revocation: drop the cached lookup now, or as soon as Redis is
    back if it is down."""
    _unknown_keys.add(key_hash)
    delete_eventually([_cache_key(key_hash)])
