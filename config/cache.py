"""Cache plumbing: a Redis cache that degrades instead of failing.

SPEC §2 "Degrade, don't fail": Redis is a cache and a broker, never the
source of truth. `PooledRedisCache` (the `default` cache when REDIS_URL is
set) therefore behaves like a circuit breaker:

- a connection error or timeout marks Redis **down** for this process and
  raises `CacheUnavailable`; the outage is logged once (ERROR), not per call;
- while down, every cache call raises `CacheUnavailable` at once — no network
  round trip, no connect timeout per request — until a re-probe is due
  (every `CACHE_REPROBE_SECONDS`), when one call tries Redis again;
- the first call that succeeds logs the recovery (WARNING) and replays the
  deletions that could not be made during the outage (`delete_eventually`),
  so no invalidation is lost.

Every caller catches `CacheUnavailable` and reads PostgreSQL instead (key
lookups, rate limits, feature checks); `cache_or` is the short form.

`PooledRedisCache` also keeps one redis client per connection pool: Django's
own client builds a new `redis.Redis` object for every cache operation, which
costs more than the round trip itself when a request makes several cache
calls (key lookup, rate limit, feature check).

`counter_incr` is a windowed counter in one round trip on Redis (pipelined
INCR + EXPIRE), used by the rate limiters; `get_and_count` reads an entry and
counts in one round trip (the API key lookup and the key's rate limit)."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

logger = logging.getLogger("saasdesk.cache")

T = TypeVar("T")

# Deletions kept for replay while Redis is down, per process. Beyond this the
# oldest are dropped: their entries still expire by their own TTL.
MAX_PENDING_DELETIONS = 10_000


class CacheUnavailable(Exception):
    """Redis cannot be reached; read the source of truth instead."""


class _Breaker:
    """Per-process outage state of one cache (see the module docstring)."""

    def __init__(self, name: str):
        self.name = name
        self.down_since: float | None = None
        self.next_probe_at = 0.0
        self.pending_deletions: dict[str, None] = {}  # ordered set
        self._lock = threading.Lock()

    def allows_call(self) -> bool:
        if self.down_since is None:
            return True
        with self._lock:
            now = time.monotonic()
            if now < self.next_probe_at:
                return False
            # One caller probes; the others keep reading the database until it is done.
            self.next_probe_at = now + _reprobe_seconds()
            return True

    def failed(self, error: BaseException) -> None:
        with self._lock:
            now = time.monotonic()
            first = self.down_since is None
            if first:
                self.down_since = now
            self.next_probe_at = now + _reprobe_seconds()
        if first:
            logger.error(
                "cache unreachable: serving from PostgreSQL until it is back",
                extra={"cache": self.name, "error": f"{error.__class__.__name__}: {error}"[:300]},
            )

    def succeeded(self, backend: RedisCache) -> None:
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is None:
                return
            outage = time.monotonic() - self.down_since
            self.down_since = None
            pending, self.pending_deletions = list(self.pending_deletions), {}
        logger.warning(
            "cache reachable again", extra={"cache": self.name, "outageSeconds": round(outage, 1),
                                             "replayedDeletions": len(pending)},
        )
        if pending:
            try:
                backend.delete_many(pending)
            except CacheUnavailable:
                self.remember_deletions(pending)

    def remember_deletions(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self.pending_deletions[key] = None
            while len(self.pending_deletions) > MAX_PENDING_DELETIONS:
                self.pending_deletions.pop(next(iter(self.pending_deletions)))


_BREAKERS: dict[str, _Breaker] = {}
_BREAKERS_LOCK = threading.Lock()


def _breaker_for(location: str) -> _Breaker:
    """One breaker per Redis location and process, shared by the per-thread
    backend instances Django creates."""
    with _BREAKERS_LOCK:
        return _BREAKERS.setdefault(location, _Breaker(location))


def _reprobe_seconds() -> float:
    return float(getattr(settings, "CACHE_REPROBE_SECONDS", 5.0))


def _outage_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)


def _guarded(method: Callable) -> Callable:
    @functools.wraps(method)
    def call(self: PooledRedisCache, *args, **kwargs):
        breaker = self.breaker
        if not breaker.allows_call():
            raise CacheUnavailable(f"cache {breaker.name!r} is down")
        try:
            result = method(self, *args, **kwargs)
        except self._outage_errors as error:
            breaker.failed(error)
            raise CacheUnavailable(str(error)) from error
        breaker.succeeded(self)
        return result

    return call


class _Script:
    """A Lua script run by EVALSHA (EVAL once per Redis server that does not
    know it yet): redis-py's `Script`, created on first use."""

    def __init__(self, source: str):
        self.source = source
        self._script = None

    def __call__(self, *, keys: list, args: list, client):
        if self._script is None:
            self._script = client.register_script(self.source)
        return self._script(keys=keys, args=args, client=client)


# GET KEYS[1]; if present, INCR KEYS[2] (EXPIRE ARGV[1] when it is new).
_GET_AND_COUNT = _Script(
    "local value = redis.call('GET', KEYS[1]) "
    "if not value then return {false, false} end "
    "local count = redis.call('INCR', KEYS[2]) "
    "if count == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end "
    "return {value, count}"
)


class PooledRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        # redis.Redis is thread-safe: it only borrows connections from its pool.
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            if index not in self._pools:
                self._pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)
            client = self._clients[index] = self._client(connection_pool=self._pools[index])
        return client


class PooledRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = PooledRedisCacheClient
        self.breaker = _breaker_for(str(server))
        self._outage_errors = _outage_errors()

    add = _guarded(RedisCache.add)
    get = _guarded(RedisCache.get)
    set = _guarded(RedisCache.set)
    touch = _guarded(RedisCache.touch)
    delete = _guarded(RedisCache.delete)
    get_many = _guarded(RedisCache.get_many)
    has_key = _guarded(RedisCache.has_key)
    incr = _guarded(RedisCache.incr)
    set_many = _guarded(RedisCache.set_many)
    delete_many = _guarded(RedisCache.delete_many)
    clear = _guarded(RedisCache.clear)

    @_guarded
    def counter_incr(self, key: str, ttl_seconds: int) -> int:
        redis_key = self.make_and_validate_key(key)
        pipeline = self._cache.get_client(redis_key, write=True).pipeline(transaction=False)
        pipeline.incr(redis_key)
        pipeline.expire(redis_key, ttl_seconds)
        count, _ = pipeline.execute()
        return int(count)

    @_guarded
    def get_and_count(self, key: str, counter_key: str, ttl_seconds: int) -> tuple[object, int | None]:
        """`get(key)` and, only if it was found, `counter_incr(counter_key)`,
        in one round trip (a Lua script, EVALSHA): (value, count), or
        (None, None) without touching the counter: an unknown key creates no
        counter (SPEC §2: a flood of random keys must not cost a cache entry
        per key)."""
        # make_key, not make_and_validate_key: this runs on every API request
        # and the validation walks the key character by character; both keys
        # are built by the API key lookup from a hex digest.
        redis_key = self.make_key(key)
        redis_counter = self.make_key(counter_key)
        client = self._cache.get_client(redis_key, write=True)
        value, count = _GET_AND_COUNT(keys=[redis_key, redis_counter], args=[ttl_seconds], client=client)
        if value is None:
            return None, None
        return self._cache._serializer.loads(value), int(count)


def cache_or(operation: Callable[[], T], fallback: Callable[[], T]) -> T:
    """`operation()` (a cache call), or `fallback()` when the cache is down."""
    try:
        return operation()
    except CacheUnavailable:
        return fallback()


def delete_eventually(keys: Iterable[str], *, alias: str = "default") -> None:
    """Delete cache entries now or, if the cache is down, as soon as it is
    back (in this process): an invalidation is never silently lost."""
    keys = list(keys)
    if not keys:
        return
    backend = caches[alias]
    try:
        backend.delete_many(keys)
    except CacheUnavailable:
        if isinstance(backend, PooledRedisCache):
            backend.breaker.remember_deletions(keys)


def cache_is_down(*, alias: str = "default") -> bool:
    """Whether this process currently considers the cache down (for /healthz)."""
    backend = caches[alias]
    return isinstance(backend, PooledRedisCache) and backend.breaker.down_since is not None


def get_and_count(key: str, counter_key: str, ttl_seconds: int, *, alias: str = "default") -> tuple[object, int | None]:
    """`get(key)` and, when it is found on Redis, `counter_incr(counter_key)`
    in the same round trip: (value, count). The count is None when the value
    was not found or the cache is not Redis; the caller then counts on its
    own. Raises CacheUnavailable when Redis is down."""
    backend = caches[alias]
    if isinstance(backend, PooledRedisCache):
        return backend.get_and_count(key, counter_key, ttl_seconds)
    return backend.get(key), None


def counter_incr(key: str, ttl_seconds: int, *, alias: str = "default") -> int:
    """Increment the counter `key` (created at 0, expiring after `ttl_seconds`)
    and return the new value. Raises CacheUnavailable when Redis is down."""
    backend = caches[alias]
    if isinstance(backend, PooledRedisCache):
        return backend.counter_incr(key, ttl_seconds)
    backend.add(key, 0, ttl_seconds)
    try:
        return backend.incr(key)
    except ValueError:  # expired between add and incr
        backend.set(key, 1, ttl_seconds)
        return 1
